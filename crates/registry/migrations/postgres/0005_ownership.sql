-- duoprov ownership, postgres dialect. When an intended create was recorded (Unix seconds): only a Duo
-- user created at or after it can be the object that create made. Intents recorded before this
-- column existed have none and claim nothing (older versions kept intents after refused creates).
ALTER TABLE sync_group ADD COLUMN pending_at BIGINT;
ALTER TABLE sync_user ADD COLUMN pending_at BIGINT;
