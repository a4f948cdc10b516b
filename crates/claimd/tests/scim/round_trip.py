"""A round trip through claimd's SCIM 2.0 Users with a SCIM client library (scim2-client):
discovery, then create, read, search, replace, patch and delete a user, each answer checked
against the schemas the server published. Run by the e2e test `scim_client`, which starts
claimd and passes SCIM_BASE (…/identity/scim/{orgId}/v2) and SCIM_TOKEN."""

import os
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Error, PatchOp, PatchOperation, SearchRequest

base = os.environ["SCIM_BASE"]
token = os.environ["SCIM_TOKEN"]

http = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
scim = SyncSCIMClient(http)
# The models are built from what the server publishes (ResourceTypes, Schemas).
scim.discover()
User = scim.get_resource_model("User")
assert User is not None, "discovery found no User resource type"
config = scim.provider.config
assert config.filter.supported and config.patch.supported and config.etag.supported, config

created = scim.create(
    User(
        user_name="Lib@Example.com",
        display_name="Library User",
        name={"given_name": "Lib", "family_name": "Rary"},
        emails=[{"value": "Lib@Example.com", "primary": True, "type": "work"}],
    )
)
assert created.id, created
assert created.user_name == "Lib@example.com", created.user_name
assert created.meta.version == 'W/"1"', created.meta

read = scim.query(User, created.id)
assert read.display_name == "Library User" and read.name.family_name == "Rary", read

found = scim.query(User, query_parameters=SearchRequest(filter='userName eq "LIB@example.com"'))
assert found.total_results == 1 and found.resources[0].id == created.id, found
none = scim.query(User, query_parameters=SearchRequest(filter='displayName sw "zzz"'))
assert none.total_results == 0, none

read.display_name = "Renamed"
replaced = scim.replace(read)
assert replaced.display_name == "Renamed" and replaced.meta.version == 'W/"2"', replaced

patch = PatchOp[User](
    operations=[PatchOperation(op="replace", path="displayName", value="Patched")]
)
patched = scim.modify(User, created.id, patch)
if patched is not None:
    assert patched.display_name == "Patched", patched
assert scim.query(User, created.id).display_name == "Patched"

scim.delete(User, created.id)
gone = scim.query(User, created.id, raise_scim_errors=False)
if not isinstance(gone, Error) or int(gone.status) != 404:
    sys.exit(f"a deleted user can still be read: {gone!r}")

print("scim2-client round trip: every step passed")
