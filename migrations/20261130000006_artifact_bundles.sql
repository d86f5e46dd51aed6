-- Source maps (issue 12): what sentry-cli uploads. Chunks are stored content-addressed by
-- their SHA-1 until a bundle is assembled from them; a bundle's files are kept, indexed by
-- debug id (for events with debug_meta) and by URL and release (for the others).
CREATE TABLE upload_chunks (
    checksum   TEXT PRIMARY KEY,
    data       BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE artifact_bundles (
    id           BIGSERIAL PRIMARY KEY,
    -- The SHA-1 of the whole bundle: the same upload twice is one bundle.
    checksum     TEXT NOT NULL UNIQUE,
    bundle_id    UUID,
    release      TEXT,
    dist         TEXT,
    file_count   INTEGER NOT NULL,
    size         BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Touched when a file of it is used; bundles unused for the retention period are removed.
    last_used_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE artifact_bundle_projects (
    bundle_id  BIGINT NOT NULL REFERENCES artifact_bundles (id) ON DELETE CASCADE,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, bundle_id)
);

CREATE TABLE artifact_files (
    id        BIGSERIAL PRIMARY KEY,
    bundle_id BIGINT NOT NULL REFERENCES artifact_bundles (id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    file_type TEXT NOT NULL,
    url       TEXT NOT NULL,
    debug_id  UUID,
    sourcemap TEXT,
    content   BYTEA NOT NULL
);
CREATE INDEX artifact_files_debug_id ON artifact_files (debug_id, file_type) WHERE debug_id IS NOT NULL;
CREATE INDEX artifact_files_bundle ON artifact_files (bundle_id);
CREATE INDEX artifact_files_url ON artifact_files (url, file_type);
