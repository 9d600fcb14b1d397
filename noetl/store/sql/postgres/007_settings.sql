-- Settings of the store itself, shared by every host. `kdf`: how NOETL_SECRET_KEY's passphrase is
-- stretched into the credentials' key, with its random salt (noetl.store.crypto); `kdf_rekeyed`: when
-- the rows encrypted before there was a salt were encrypted again. Delete neither: the credentials
-- would not decrypt.
CREATE TABLE IF NOT EXISTS noetl_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
