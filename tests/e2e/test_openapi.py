"""The served OpenAPI document matches the real routes and the real responses."""
import re
import unittest
import uuid

from harness import Server


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        path = node["$ref"].lstrip("#/").split("/")
        node = doc
        for p in path:
            node = node[p]
    return node


def validate(doc, schema, value, where="$"):
    """A small JSON-schema subset: type, required, properties, additionalProperties, enum, items, pattern."""
    schema = resolve(doc, schema)
    t = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool}
    if t == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: expected integer, got {value!r}"
    elif t in types:
        assert isinstance(value, types[t]), f"{where}: expected {t}, got {value!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{where}: {value!r} !~ {schema['pattern']}"
    if t == "object" or "properties" in schema:
        for r in schema.get("required", []):
            assert r in value, f"{where}: missing required {r}"
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                validate(doc, props[k], v, f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                raise AssertionError(f"{where}: undocumented property {k}")
    if t == "array":
        for i, v in enumerate(value):
            validate(doc, schema.get("items", {}), v, f"{where}[{i}]")


class OpenApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(extra=["--set", "api.user_rate_per_second=0"])
        cls.tok = cls.s.user("olga", "PRO")
        cls.s.start()
        cls.src = cls.s.connection("olga", "garmin")
        cls.dst = cls.s.connection("olga", "fitbit")
        cls.doc = cls.s.request("GET", "/v1/openapi.json").json()

    @classmethod
    def tearDownClass(cls):
        cls.s.cleanup()

    def check(self, method, path, template, response):
        op = self.doc["paths"][template][method.lower()]
        self.assertIn(str(response.status), op["responses"], f"{method} {path}: undocumented status {response}")
        spec = resolve(self.doc, op["responses"][str(response.status)])
        content = spec.get("content")
        if not content:
            self.assertEqual(response.body, b"", f"{method} {path}: body where none is documented")
            return
        ctype = response.headers.get("content-type", "").split(";")[0]
        self.assertIn(ctype, content, f"{method} {path}: content type {ctype}")
        if ctype.endswith("json"):
            validate(self.doc, content[ctype]["schema"], response.json(), f"{method} {path}")

    def test_every_documented_operation_is_routed(self):
        self.assertEqual(self.doc["openapi"][:2], "3.")
        for template, item in self.doc["paths"].items():
            path = re.sub(r"\{[^}]+\}", "x" + uuid.uuid4().hex[:8], template)
            for method in ("get", "post", "put", "delete", "patch"):
                r = self.s.request(method.upper(), path, key=None)
                if method in item:
                    self.assertNotEqual(r.status, 405, f"{method} {template} is documented but not routed")
                    if "{" not in template:
                        self.assertNotEqual(r.status, 404, f"{method} {template} is documented but not routed")
                    self.check(method.upper(), path, template, r)
                else:
                    self.assertEqual(r.status, 405, f"{method} {template} is routed but not documented")

    def test_real_responses_match_their_schemas(self):
        t = self.tok
        calls = []
        def call(method, path, template, **kw):
            r = self.s.request(method, path, token=t, **kw)
            self.check(method, path, template, r)
            calls.append(r)
            return r
        job = {"sourceConnectionId": self.src, "destinationConnectionId": self.dst, "dataType": "weight", "mode": "historical",
               "dateRange": {"startDate": "2025-01-01", "endDate": "2025-12-31"}}
        j = call("POST", "/v1/sync-jobs", "/v1/sync-jobs", body=job)
        self.assertEqual(j.status, 202)
        call("POST", "/v1/sync-jobs", "/v1/sync-jobs", body={"bad": 1})
        call("GET", "/v1/sync-jobs/" + j.json()["jobId"], "/v1/sync-jobs/{jobId}")
        call("GET", "/v1/sync-jobs/job_nope", "/v1/sync-jobs/{jobId}")
        call("GET", "/v1/connections", "/v1/connections")
        c = call("POST", "/v1/sync-configs", "/v1/sync-configs",
                 body={"sourceConnectionId": self.src, "destinationConnectionId": self.dst, "dataType": "workout"})
        self.assertEqual(c.status, 201)
        cid = c.json()["configId"]
        call("GET", "/v1/sync-configs", "/v1/sync-configs")
        call("GET", "/v1/sync-configs/" + cid, "/v1/sync-configs/{configId}")
        call("PUT", "/v1/sync-configs/" + cid, "/v1/sync-configs/{configId}", body={"conflictStrategy": "dest_wins", "enabled": False})
        call("PUT", "/v1/sync-configs/" + cid, "/v1/sync-configs/{configId}", body={"conflictStrategy": "dest_wins", "enabled": False, "version": 1})
        call("PUT", "/v1/sync-configs/" + cid, "/v1/sync-configs/{configId}", body={"conflictStrategy": "dest_wins", "enabled": False, "version": 1})
        call("DELETE", "/v1/sync-configs/" + cid, "/v1/sync-configs/{configId}")
        call("PUT", "/v1/users/me/settings", "/v1/users/me/settings",
             body={"settings": {"conflictResolutionStrategy": "newest_wins", "notificationsEnabled": False}})
        call("GET", "/v1/users/me", "/v1/users/me")
        call("GET", "/v1/users/me/deletion", "/v1/users/me/deletion")
        call("DELETE", "/v1/connections/" + self.dst, "/v1/connections/{connectionId}")
        call("GET", "/healthz", "/healthz")
        call("GET", "/readyz", "/readyz")
        self.assertTrue({200, 201, 202, 204, 400, 404, 409}.issubset({r.status for r in calls}))


if __name__ == "__main__":
    unittest.main()
