"""The recordings ledger's tables (SQLite and PostgreSQL alike), and the columns later versions
added, for a ledger an earlier version made."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS chains (chain_id TEXT PRIMARY KEY, call_number INTEGER NOT NULL,
    seen DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION, last_file_at DOUBLE PRECISION,
    announced INTEGER NOT NULL DEFAULT 0, leased_until DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS links (chain_id TEXT NOT NULL, link INTEGER NOT NULL, extension TEXT NOT NULL,
    started DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION, ended TEXT, PRIMARY KEY (chain_id, link));
CREATE INDEX IF NOT EXISTS links_extension ON links (extension, started);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, chain_id TEXT NOT NULL, link INTEGER NOT NULL,
    started DOUBLE PRECISION NOT NULL, name TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0,
    converted INTEGER NOT NULL DEFAULT 0, queued INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS files_link ON files (chain_id, link);
CREATE TABLE IF NOT EXISTS recording_options (extension TEXT PRIMARY KEY, recording TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE INDEX IF NOT EXISTS chains_unannounced ON chains (ended_at) WHERE announced = 0;
CREATE INDEX IF NOT EXISTS chains_age ON chains ((coalesce(ended_at, seen)));
"""
COLUMNS = {
    "files": ("queued INTEGER NOT NULL DEFAULT 1",),
    "chains": ("leased_until DOUBLE PRECISION",),
}
