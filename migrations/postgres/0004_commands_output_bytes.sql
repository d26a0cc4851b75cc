-- Output bytes kept per command, updated in the same transaction as the
-- chunks, so the output cap holds under concurrent appends.
ALTER TABLE agent_commands ADD COLUMN output_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE agent_commands SET output_bytes = COALESCE(
    (SELECT SUM(LENGTH(data)) FROM command_output WHERE command_output.command_id = agent_commands.id), 0);
