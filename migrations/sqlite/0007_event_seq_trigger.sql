-- An event appended as "the case's next" takes its sequence number in the statement that
-- inserts it (INSERT … SELECT last_event_seq + 1 FROM cases), and this trigger moves the
-- case's counter and `updated_at` along inside SQLite, without a second statement: one
-- round trip to the database per event, as PostgreSQL's CTE does. An event inserted with
-- a number taken beforehand (the counter already equals it) leaves the case untouched.
CREATE TRIGGER case_events_take_seq AFTER INSERT ON case_events
WHEN NEW.seq > (SELECT last_event_seq FROM cases WHERE id = NEW.case_id)
BEGIN
    UPDATE cases SET last_event_seq = NEW.seq, updated_at = NEW.at WHERE id = NEW.case_id;
END;
