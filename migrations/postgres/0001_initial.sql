-- Connectors, per-consumer deactivations and API keys (PostgreSQL).
CREATE TABLE connectors (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    org_id        TEXT NOT NULL,
    creator_id    TEXT NOT NULL,
    owner_type    TEXT NOT NULL,
    owner_id      TEXT NOT NULL,
    visibility    TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    supports_mcp  BIGINT NOT NULL,
    document      TEXT NOT NULL,
    secrets       BYTEA,
    created_at    TEXT NOT NULL,
    modified_at   TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE INDEX connectors_keyset ON connectors (created_at, id);
CREATE INDEX connectors_name ON connectors (name);

CREATE TABLE connector_blocks (
    connector_id  TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    consumer_type TEXT NOT NULL,
    consumer_id   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (connector_id, consumer_type, consumer_id)
);

CREATE TABLE api_keys (
    key_hash      TEXT PRIMARY KEY NOT NULL,
    key_prefix    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    org_id        TEXT NOT NULL,
    is_admin      BIGINT NOT NULL,
    created_at    TEXT NOT NULL
);
