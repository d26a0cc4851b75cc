-- A token rotated out keeps working for its grace period but cannot rotate
-- again: rotation records when it happened.
ALTER TABLE agent_tokens ADD COLUMN rotated_at BIGINT;
