-- User feedback (issue 11): what people wrote about an error, from SDKs (`user_report` and
-- `feedback` envelope items), the crash-report dialog and the API.
CREATE TABLE user_feedback (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- What a repeat overwrites: the error's id for reports about it, the feedback's own id for
    -- `feedback` items (several may be about one error).
    report_id   UUID NOT NULL,
    -- The error event it is about, if any; it may arrive before or after the feedback.
    event_id    UUID,
    -- Set once the event is stored (at once, or by the writer when the event arrives).
    issue_id    BIGINT REFERENCES issues (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    email       TEXT NOT NULL,
    comments    TEXT NOT NULL,
    url         TEXT,
    environment TEXT,
    source      TEXT NOT NULL CHECK (source IN ('user_report', 'feedback', 'crash_report_dialog', 'api')),
    received_at TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, report_id)
);
CREATE INDEX user_feedback_issue ON user_feedback (issue_id, received_at DESC) WHERE issue_id IS NOT NULL;
CREATE INDEX user_feedback_project ON user_feedback (project_id, received_at DESC, id DESC);
-- Feedback waiting for its event: the writer probes this (usually empty) index per new event.
CREATE INDEX user_feedback_pending ON user_feedback (project_id, event_id) WHERE issue_id IS NULL;
