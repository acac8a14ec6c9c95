-- OAuth 2 for upstream connectors (SQLite): credential status, dynamically registered clients,
-- used authorization states, and leases (one OAuth refresh per credential at a time).
ALTER TABLE credentials ADD COLUMN status TEXT;

CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY NOT NULL,
    issuer        TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    auth_method   TEXT NOT NULL,
    secrets       BLOB,
    created_at    TEXT NOT NULL,
    UNIQUE (issuer, redirect_uri)
);

CREATE TABLE oauth_states (
    nonce       TEXT PRIMARY KEY NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
