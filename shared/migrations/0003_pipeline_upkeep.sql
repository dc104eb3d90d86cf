-- Messages a consumer gave up on (rejected, or out of attempts), moved here from
-- each queue's dead-letter queue so operators can list, read and replay them the
-- same way on both buses.
CREATE TABLE dead_letters (
    id           TEXT PRIMARY KEY,
    queue        TEXT NOT NULL,   -- the consumer queue that failed it
    message_id   TEXT NOT NULL,
    tenant_id    TEXT NOT NULL,
    topic        TEXT NOT NULL,
    envelope     TEXT NOT NULL,   -- JSON, with its dead_letter note
    reason       TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    dead_at      BIGINT NOT NULL,
    parked_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX dead_letters_by_message ON dead_letters (queue, message_id);
CREATE INDEX dead_letters_by_tenant ON dead_letters (tenant_id, id);

-- Pruning of the consumers' idempotency markers walks this index.
CREATE INDEX processed_messages_by_age ON processed_messages (processed_at);
