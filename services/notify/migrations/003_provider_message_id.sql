-- Delivery reports name a message by the provider's own id (the one it answered when it
-- accepted the message): found by provider and that id.
CREATE INDEX notifications_provider_message ON notifications (provider, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
