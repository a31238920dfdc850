"""deploy/spinkube: the SpinApp manifest against SpinKube's API and spin.toml, the
autoscaler and the Secret template against the manifest. Run: python3 -m unittest discover -s deploy/tests"""
import copy
import json
import unittest
from urllib.parse import urlsplit

import jsonschema
import yaml

from common import SPINKUBE, spin_variables


def load(name):
    with open(SPINKUBE / name) as handle:
        return yaml.safe_load(handle)


class SpinAppManifest(unittest.TestCase):
    def setUp(self):
        self.app = load("spinapp.yaml")
        with open(SPINKUBE / "spinapp.schema.json") as handle:
            self.schema = json.load(handle)
        self.variables = {v["name"]: v for v in self.app["spec"]["variables"]}

    def test_manifest_is_a_valid_spinapp(self):
        jsonschema.validate(self.app, self.schema)

    def test_schema_refuses_a_misspelt_field_and_a_missing_image(self):
        misspelt = copy.deepcopy(self.app)
        misspelt["spec"]["replica"] = misspelt["spec"].pop("replicas")
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.validate(misspelt, self.schema)
        imageless = copy.deepcopy(self.app)
        del imageless["spec"]["image"]
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.validate(imageless, self.schema)

    def test_schema_follows_the_operators_replica_rule(self):
        # spin-operator's webhook: replicas >= 1 unless enableAutoscaling, and then none.
        autoscaled = copy.deepcopy(self.app)
        del autoscaled["spec"]["replicas"]
        autoscaled["spec"]["enableAutoscaling"] = True
        jsonschema.validate(autoscaled, self.schema)
        both = copy.deepcopy(autoscaled)
        both["spec"]["replicas"] = 2
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.validate(both, self.schema)
        neither = copy.deepcopy(self.app)
        del neither["spec"]["replicas"]
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.validate(neither, self.schema)
        zero = copy.deepcopy(self.app)
        zero["spec"]["replicas"] = 0
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.validate(zero, self.schema)

    def test_schema_refuses_what_the_crd_refuses(self):
        cases = {
            "no executor": lambda spec: spec.pop("executor"),
            "a memory limit that is no quantity": lambda spec: spec["resources"]["limits"].update(memory="512MB"),
            "a secretKeyRef without key": lambda spec: spec["variables"][0]["valueFrom"]["secretKeyRef"].pop("key"),
            "a probe without path": lambda spec: spec["checks"]["readiness"]["httpGet"].pop("path"),
        }
        for case, change in cases.items():
            with self.subTest(case):
                broken = copy.deepcopy(self.app)
                change(broken["spec"])
                with self.assertRaises(jsonschema.ValidationError):
                    jsonschema.validate(broken, self.schema)

    def test_every_spin_toml_variable_is_bound_exactly_once(self):
        names = [v["name"] for v in self.app["spec"]["variables"]]
        self.assertEqual(len(names), len(set(names)), "a variable is bound twice")
        self.assertEqual(set(names), set(spin_variables()))

    def test_secret_variables_come_from_the_secret(self):
        for name, declaration in spin_variables().items():
            if declaration.get("secret"):
                ref = self.variables[name].get("valueFrom", {}).get("secretKeyRef")
                self.assertIsNotNone(ref, f"{name} is secret: bind it with secretKeyRef")
                self.assertNotIn("value", self.variables[name])

    def test_required_secrets_are_not_optional(self):
        for name, declaration in spin_variables().items():
            ref = self.variables[name].get("valueFrom", {}).get("secretKeyRef")
            if declaration.get("required") and ref:
                self.assertFalse(ref.get("optional", False), f"{name} is required by spin.toml")

    def test_optional_variables_from_the_secret_may_be_missing_from_it(self):
        for name, declaration in spin_variables().items():
            ref = self.variables[name].get("valueFrom", {}).get("secretKeyRef")
            if ref and not declaration.get("required") and name != "db_host":
                self.assertTrue(ref.get("optional"), f"{name} has a default: mark its secretKeyRef optional")

    def test_plain_values_equal_spin_toml_defaults(self):
        for name, declaration in spin_variables().items():
            if "value" in self.variables[name]:
                self.assertEqual(self.variables[name]["value"], declaration.get("default"), name)

    def test_probes_ask_the_health_function(self):
        checks = self.app["spec"]["checks"]
        for probe in ("readiness", "liveness"):
            self.assertEqual(checks[probe]["httpGet"]["path"], "/functions/v1/health")

    def test_resources_are_bounded(self):
        resources = self.app["spec"]["resources"]
        self.assertIn("memory", resources["limits"])
        self.assertIn("cpu", resources["requests"])


class Autoscaler(unittest.TestCase):
    def setUp(self):
        self.hpa = load("hpa.yaml")
        self.app = load("spinapp.yaml")

    def test_scales_the_deployment_the_operator_makes_for_the_app(self):
        self.assertEqual((self.hpa["apiVersion"], self.hpa["kind"]),
                         ("autoscaling/v2", "HorizontalPodAutoscaler"))
        self.assertEqual(self.hpa["spec"]["scaleTargetRef"],
                         {"apiVersion": "apps/v1", "kind": "Deployment", "name": self.app["metadata"]["name"]})

    def test_replica_bounds_are_sane(self):
        spec = self.hpa["spec"]
        self.assertLessEqual(1, spec["minReplicas"])
        self.assertLess(spec["minReplicas"], spec["maxReplicas"])

    def test_utilization_targets_have_a_request_to_be_measured_against(self):
        requests = self.app["spec"]["resources"]["requests"]
        metrics = self.hpa["spec"]["metrics"]
        self.assertTrue(metrics)
        for metric in metrics:
            self.assertEqual(metric["type"], "Resource")
            target = metric["resource"]["target"]
            self.assertEqual(target["type"], "Utilization")
            self.assertTrue(1 <= target["averageUtilization"] <= 100)
            self.assertIn(metric["resource"]["name"], requests,
                          "utilisation is a share of the request: spinapp.yaml must request it")


class SecretTemplate(unittest.TestCase):
    def setUp(self):
        self.secret = load("secret.template.yaml")
        self.app = load("spinapp.yaml")

    def test_template_holds_every_key_the_manifest_refers_to_and_no_other(self):
        referred = {
            v["valueFrom"]["secretKeyRef"]["key"]
            for v in self.app["spec"]["variables"]
            if "secretKeyRef" in v.get("valueFrom", {})
        }
        names = {
            v["valueFrom"]["secretKeyRef"]["name"]
            for v in self.app["spec"]["variables"]
            if "secretKeyRef" in v.get("valueFrom", {})
        }
        self.assertEqual(self.secret["kind"], "Secret")
        self.assertEqual(names, {self.secret["metadata"]["name"]})
        self.assertEqual(set(self.secret["stringData"]), referred)

    def test_db_host_is_the_host_and_port_of_both_connection_strings(self):
        data = self.secret["stringData"]
        for key in ("db_url", "demo_db_url"):
            url = urlsplit(data[key])
            self.assertEqual(f"{url.hostname}:{url.port or 5432}", data["db_host"], key)
            self.assertIn("sslmode=require", data[key], key)

    def test_ca_certificate_is_a_multi_line_pem_block(self):
        pem = self.secret["stringData"]["db_ca_cert"]
        lines = pem.strip().split("\n")
        self.assertEqual(lines[0], "-----BEGIN CERTIFICATE-----")
        self.assertEqual(lines[-1], "-----END CERTIFICATE-----")
        self.assertGreater(len(lines), 2)

    def test_template_holds_placeholders_only(self):
        for key, value in self.secret["stringData"].items():
            if value:
                self.assertIn("<", value, f"{key} looks like a real value")


if __name__ == "__main__":
    unittest.main()
