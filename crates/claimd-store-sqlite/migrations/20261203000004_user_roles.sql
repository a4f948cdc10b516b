-- Users' CI roles (JSON array of role values), and whether one of them is id_full_admin: the
-- admin lock-out guard counts an organization's active full administrators by that index.
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN full_admin INTEGER NOT NULL DEFAULT 0 CHECK (full_admin IN (0, 1));
CREATE INDEX users_full_admins ON users (org_id) WHERE full_admin;
