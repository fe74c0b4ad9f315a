"""rembug's platform package: what every service stands on.

Nothing here is specific to one service: the event envelope and store, the
relay, consumer tracking, errors, auth, configuration and test fixtures.
"""
