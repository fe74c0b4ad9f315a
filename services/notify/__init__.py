"""Notifications: SMS, WhatsApp, email and in-app, once per event and person (issue 5)."""
