-- Alerts. The writer records each trigger (an issue created or reopened) in `alert_outbox`
-- in the same transaction as the events that caused it, so an acknowledged event that opens
-- an issue always produces its notification. A sender task turns each outbox row into one
-- delivery per matching channel and delivers it, retrying with backoff.

CREATE TABLE alert_channels (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('webhook', 'slack', 'discord', 'teams', 'email')),
    -- Where to post (webhook URLs carry their own secrets), or comma-separated addresses.
    target          TEXT NOT NULL,
    -- Signs generic webhooks (X-Faultline-Signature) when set.
    secret          TEXT,
    triggers        TEXT[] NOT NULL DEFAULT '{new_issue,regression}',
    -- Empty: every environment.
    environments    TEXT[] NOT NULL DEFAULT '{}',
    min_level       TEXT NOT NULL DEFAULT 'debug',
    -- Spike: more than spike_events events of one issue within spike_minutes.
    spike_events    INT,
    spike_minutes   INT,
    -- Least time between two spike alerts for one issue on this channel.
    cooldown_minutes INT NOT NULL DEFAULT 30,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_success_at TIMESTAMPTZ,
    last_failure_at TIMESTAMPTZ,
    last_failure    TEXT,
    -- Failing without a success since then; after 24 h the channel is disabled.
    failing_since   TIMESTAMPTZ,
    -- Set when the receiver said the webhook is gone (401/403/404/410) or after 24 h of
    -- failures; a successful test notification enables it again.
    disabled_at     TIMESTAMPTZ
);
CREATE INDEX alert_channels_project ON alert_channels (project_id);

CREATE TABLE alert_outbox (
    id          BIGSERIAL PRIMARY KEY,
    issue_id    BIGINT NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    trigger     TEXT NOT NULL,
    -- The event that caused it (its page is linked), and what channel filters look at.
    event_id    UUID NOT NULL,
    environment TEXT,
    release     TEXT,
    level       TEXT NOT NULL,
    -- Spikes are found per channel (each has its own threshold): only that channel hears it.
    channel_id  BIGINT REFERENCES alert_channels (id) ON DELETE CASCADE,
    spike_count BIGINT,
    spike_minutes INT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set once its deliveries exist.
    expanded_at TIMESTAMPTZ
);
CREATE INDEX alert_outbox_pending ON alert_outbox (id) WHERE expanded_at IS NULL;
CREATE INDEX alert_outbox_spikes ON alert_outbox (channel_id, issue_id, created_at)
    WHERE trigger = 'spike';

CREATE TABLE alert_deliveries (
    id              BIGSERIAL PRIMARY KEY,
    outbox_id       BIGINT NOT NULL REFERENCES alert_outbox (id) ON DELETE CASCADE,
    channel_id      BIGINT NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    attempts        INT NOT NULL DEFAULT 0,
    -- Also the lease: a sender that claims a delivery moves this forward, so a delivery
    -- claimed by an instance that died is due again once the lease runs out.
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- First attempt: what the channel's cap counts.
    sent_at         TIMESTAMPTZ,
    -- Held back by the channel's cap; delivered later in one digest.
    held_at         TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    abandoned_at    TIMESTAMPTZ,
    last_error      TEXT,
    UNIQUE (outbox_id, channel_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND abandoned_at IS NULL AND held_at IS NULL;
CREATE INDEX alert_deliveries_channel_sent ON alert_deliveries (channel_id, sent_at);
CREATE INDEX alert_deliveries_held ON alert_deliveries (channel_id, held_at)
    WHERE held_at IS NOT NULL AND delivered_at IS NULL;
