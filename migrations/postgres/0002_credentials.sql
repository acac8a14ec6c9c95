-- Stored credentials of connectors, per consumer scope (PostgreSQL).
CREATE TABLE credential_sets (
    connector_id  TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    scope         TEXT NOT NULL,
    owner_id      TEXT NOT NULL,
    version       BIGINT NOT NULL,
    PRIMARY KEY (connector_id, scope, owner_id)
);

CREATE TABLE credentials (
    id                  TEXT PRIMARY KEY NOT NULL,
    connector_id        TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    scope               TEXT NOT NULL,
    owner_id            TEXT NOT NULL,
    name                TEXT NOT NULL,
    title               TEXT,
    authentication_type TEXT NOT NULL,
    is_default          BIGINT NOT NULL,
    creator_id          TEXT NOT NULL,
    secrets             BYTEA NOT NULL,
    created_at          TEXT NOT NULL,
    modified_at         TEXT NOT NULL,
    UNIQUE (connector_id, scope, owner_id, name)
);
CREATE INDEX credentials_set ON credentials (connector_id, scope, owner_id);
