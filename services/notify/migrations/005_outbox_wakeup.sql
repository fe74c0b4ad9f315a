-- Wake the dispatchers when notifications are created. A NOTIFY is delivered when its
-- transaction commits, so a dispatcher that hears it finds the new rows; and it reaches
-- every notify process listening on this database, not only the one that created them.
CREATE FUNCTION notifications_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rembug_outbox:' || current_schema(), '');
    RETURN NULL;
END
$$;

CREATE TRIGGER notifications_created AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION notifications_created();
