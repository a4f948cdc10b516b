-- The users an organization's enforcement left outside its verified domains: without
-- enforcement only they can change, so a verification in an organization that does not
-- enforce looks at this (usually empty) index instead of every user.
CREATE INDEX users_outside ON users (org_id) WHERE outside_verified;
