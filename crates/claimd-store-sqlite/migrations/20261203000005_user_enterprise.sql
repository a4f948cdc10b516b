-- SCIM's enterprise User extension: its attributes as one JSON object (SCIM names; the
-- manager's user id under "manager").
ALTER TABLE users ADD COLUMN enterprise TEXT NOT NULL DEFAULT '{}';
