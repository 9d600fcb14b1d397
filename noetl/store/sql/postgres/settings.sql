-- Named queries of the store's settings and of re-encrypting its rows (noetl.store.crypto). Not a
-- migration: only numbered files are applied by migrate().

-- name: get_setting
SELECT value FROM noetl_settings WHERE name = %(name)s;

-- name: add_setting
-- The first value stored wins: a process adding the salt at the same time as another reads theirs.
INSERT INTO noetl_settings (name, value) VALUES (%(name)s, %(value)s) ON CONFLICT (name) DO NOTHING;

-- name: credential_tokens
SELECT name, data FROM noetl_credentials;

-- name: sealed_tokens
SELECT execution_id, name, data FROM noetl_sealed_values;

-- name: replace_credential_token
-- Only if the row still holds the token that was read: a credential stored meanwhile keeps its value.
UPDATE noetl_credentials SET data = %(new)s WHERE name = %(name)s AND data = %(old)s;

-- name: replace_sealed_token
UPDATE noetl_sealed_values SET data = %(new)s
WHERE execution_id = %(execution_id)s AND name = %(name)s AND data = %(old)s;
