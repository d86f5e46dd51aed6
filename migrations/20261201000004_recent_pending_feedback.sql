-- The upkeep task links feedback saved while its event's transaction was running: only recent
-- reports can be in that race, and this index finds them without reading every report whose
-- event never came (a DSN holder can leave many).
CREATE INDEX user_feedback_pending_received ON user_feedback (received_at) WHERE issue_id IS NULL;
