-- Any event id, one step away (issue 11): find an event by its id alone, whatever its
-- project, through the ledger every stored event has a row in.
CREATE INDEX event_ids_event_id ON event_ids (event_id);
