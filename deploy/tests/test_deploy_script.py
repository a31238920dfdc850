"""scripts/deploy.sh (`make deploy`) with a stand-in `spin` that records its arguments.
Run: python3 -m unittest discover -s deploy/tests"""
import os
import pathlib
import subprocess
import tempfile
import unittest

from common import DEPLOY_SCRIPT, spin_variables

SECRETS = {
    "DB_URL": "postgres://postgres:pw-db-1234@db.ref.supabase.co:5432/postgres?sslmode=require",
    "DEMO_DB_URL": "postgres://demo_relay:pw-demo-5678@db.ref.supabase.co:5432/postgres?sslmode=require",
    "SUPABASE_JWT_SECRET": "jwt-secret-abcdef",
    "CLASSCONNECT_WEBHOOK_SECRET": "whsec_bmV3c2VjcmV0MTIzNDU2Nzg= whsec_b2xkc2VjcmV0MTIzNDU2Nzg=",
}

FAKE_SPIN = """#!/bin/sh
printf '%s\\n' "$SPIN_DEPLOY_PLUGIN" >> "$SPIN_RECORD.plugin"
for arg in "$@"; do printf '%s\\0' "$arg"; done >> "$SPIN_RECORD"
printf '\\n' >> "$SPIN_RECORD"
"""


class DeployScript(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.spin = pathlib.Path(self.dir.name) / "spin"
        self.spin.write_text(FAKE_SPIN)
        self.spin.chmod(0o755)
        self.record = pathlib.Path(self.dir.name) / "record"

    def tearDown(self):
        self.dir.cleanup()

    def run_script(self, env, *args, spin=None):
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("SPIN_VARIABLE_") and k.lower() not in spin_variables()
                and k != "SPIN_DEPLOY_PLUGIN"}
        base.update({"SPIN": str(spin or self.spin), "SPIN_RECORD": str(self.record)})
        base.update(env)
        return subprocess.run(["bash", str(DEPLOY_SCRIPT), *args], env=base,
                              capture_output=True, text=True, timeout=60)

    def calls(self):
        if not self.record.exists():
            return []
        lines = self.record.read_text().split("\n")
        return [line.rstrip("\0").split("\0") for line in lines if line]

    def assert_no_secret_printed(self, result):
        for value in SECRETS.values():
            for part in value.split():
                self.assertNotIn(part, result.stdout + result.stderr)

    def test_deploys_with_every_variable_from_the_environment_after_building(self):
        result = self.run_script({**SECRETS, "REALTIME_VOICE": "verse"})
        self.assertEqual(result.returncode, 0, result.stderr)
        build, deploy = self.calls()
        self.assertEqual(build[0], "build")
        self.assertEqual(deploy[0], "deploy")
        passed = dict(deploy[i + 1].split("=", 1) for i, a in enumerate(deploy) if a == "--variable")
        self.assertEqual(passed["db_url"], SECRETS["DB_URL"])
        self.assertEqual(passed["classconnect_webhook_secret"], SECRETS["CLASSCONNECT_WEBHOOK_SECRET"])
        self.assertEqual(passed["realtime_voice"], "verse")
        self.assertEqual(passed["db_host"], "db.ref.supabase.co:5432")
        self.assertNotIn("openai_base_url", passed, "an unset optional variable keeps spin.toml's default")
        self.assertEqual(self.record.with_suffix(".plugin").read_text().split(), ["cloud", "cloud"])
        self.assert_no_secret_printed(result)

    def test_spin_variable_names_win_over_plain_names(self):
        env = {**SECRETS, "SPIN_VARIABLE_SUPABASE_JWT_SECRET": "from-spin-variable"}
        result = self.run_script(env, "--no-build")
        self.assertEqual(result.returncode, 0, result.stderr)
        (deploy,) = self.calls()
        self.assertIn("supabase_jwt_secret=from-spin-variable", deploy)

    def test_missing_required_variable_is_refused_by_name_and_nothing_runs(self):
        env = {k: v for k, v in SECRETS.items() if k != "SUPABASE_JWT_SECRET"}
        result = self.run_script(env)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("supabase_jwt_secret", result.stderr)
        self.assertEqual(self.calls(), [])
        self.assert_no_secret_printed(result)

    def test_missing_spin_is_refused_clearly(self):
        result = self.run_script(SECRETS, spin="/nonexistent/spin")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("spin is not installed", result.stderr)

    def test_db_host_that_differs_from_the_connection_strings_is_refused(self):
        result = self.run_script({**SECRETS, "DB_HOST": "db.ref.supabase.co:6543"})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("db_host", result.stderr)
        self.assertEqual(self.calls(), [])
        self.assert_no_secret_printed(result)

    def test_check_validates_and_deploys_nothing(self):
        result = self.run_script(SECRETS, "--check")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("check passed", result.stdout)
        self.assertEqual(self.calls(), [])
        self.assert_no_secret_printed(result)


if __name__ == "__main__":
    unittest.main()
