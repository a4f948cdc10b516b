-- Users' CI roles (JSON array of role values), and whether one of them is id_full_admin: the
-- admin lock-out guard counts an organization's active full administrators by that index.
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE users ADD COLUMN full_admin BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX users_full_admins ON users (org_id) WHERE full_admin;
