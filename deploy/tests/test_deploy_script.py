"""scripts/deploy.sh (`make deploy`) with a stand-in `spin` that records its arguments.
Run: python3 -m unittest discover -s deploy/tests

With REAL_SPIN set to a spin binary (REAL_SPIN=$(../shared/tools/install-spin.sh)), the
script also runs through real Spin, with stand-in aka and cloud plugins installed in a
HOME of the test's own."""
import base64
import hashlib
import json
import os
import pathlib
import subprocess
import tarfile
import tempfile
import textwrap
import unittest

from common import DEPLOY_SCRIPT, spin_variables

SECRETS = {
    "DB_URL": "postgres://postgres:pw-db-1234@db.ref.supabase.co:5432/postgres?sslmode=require",
    "DEMO_DB_URL": "postgres://demo_relay:pw-demo-5678@db.ref.supabase.co:5432/postgres?sslmode=require",
    "SUPABASE_JWT_SECRET": "jwt-secret-abcdef",
    "CLASSCONNECT_WEBHOOK_SECRET": "whsec_bmV3c2VjcmV0MTIzNDU2Nzg= whsec_b2xkc2VjcmV0MTIzNDU2Nzg=",
}
TOKENS = {"SPIN_AKA_ACCESS_TOKEN": "pat_aka-token-0123", "FERMYON_CLOUD_TOKEN": "cloud-token-4567"}
AKA_APP_ID = "8c1f0a52-5a0e-4a51-9b53-0d0d7a6bdf10"

# A CA certificate as Supabase hands it out: PEM, 64-character lines, a final newline.
CA_CERT = "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n".format(
    "\n".join(textwrap.wrap(base64.b64encode(bytes(range(256)) * 2).decode(), 64)))

# Records one JSON line per call: the plugin, the arguments, the token variables the
# plugins read, and the content and mode of every @file argument (the script removes
# the file when it ends).
FAKE_SPIN = """#!/usr/bin/env python3
import json, os, sys
files = {}
for arg in sys.argv[1:]:
    if arg.startswith("@"):
        with open(arg[1:]) as handle:
            files[arg[1:]] = {"content": handle.read(), "mode": os.stat(arg[1:]).st_mode & 0o777}
call = {"plugin": os.environ.get("SPIN_DEPLOY_PLUGIN"), "args": sys.argv[1:], "files": files,
        "SPIN_AKA_ACCESS_TOKEN": os.environ.get("SPIN_AKA_ACCESS_TOKEN"),
        "SPIN_AUTH_TOKEN": os.environ.get("SPIN_AUTH_TOKEN")}
with open(os.environ["SPIN_RECORD"], "a") as record:
    record.write(json.dumps(call) + "\\n")
"""

# What the environment may hold that the script reads; cleared before every run.
CONTROLLED = {"CI", "DEPLOY_TARGET", "SPIN_DEPLOY_PLUGIN", "AKA_APP_ID", "SPIN_AUTH_TOKEN", *TOKENS}


class Runs(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.spin = pathlib.Path(self.dir.name) / "spin"
        self.spin.write_text(FAKE_SPIN)
        self.spin.chmod(0o755)
        self.record = pathlib.Path(self.dir.name) / "record"

    def tearDown(self):
        self.dir.cleanup()

    def run_script(self, env, *args, spin=None, extra_env=None):
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("SPIN_VARIABLE_") and k.lower() not in spin_variables()
                and k not in CONTROLLED}
        base.update({"SPIN": str(spin or self.spin), "SPIN_RECORD": str(self.record),
                     "TMPDIR": self.dir.name})
        base.update(extra_env or {})
        base.update(env)
        return subprocess.run(["bash", str(DEPLOY_SCRIPT), *args], env=base,
                              capture_output=True, text=True, timeout=60)

    def calls(self):
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def assert_nothing_ran(self, result):
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(self.calls(), [], "spin ran although the script refused")
        self.assert_no_secret_printed(result)

    def assert_no_secret_printed(self, result):
        for value in [*SECRETS.values(), *TOKENS.values(), CA_CERT]:
            for part in value.split():
                if len(part) > 8 and "-----" not in part:
                    self.assertNotIn(part, result.stdout + result.stderr)

    @staticmethod
    def passed_on_the_command_line(call):
        args = call["args"]
        return dict(args[i + 1].split("=", 1) for i, a in enumerate(args)
                    if a == "--variable" and not args[i + 1].startswith("@"))

    @staticmethod
    def passed_in_files(call):
        args = call["args"]
        passed = {}
        for i, a in enumerate(args):
            if a == "--variable" and args[i + 1].startswith("@"):
                passed.update(json.loads(call["files"][args[i + 1][1:]]["content"]))
        return passed


class Targets(Runs):
    """What each plugin gets: aka a JSON file, cloud name=value arguments."""

    def test_aka_by_default_logs_in_builds_and_deploys_every_variable_from_a_private_file(self):
        env = {**SECRETS, **TOKENS, "CI": "true", "AKA_APP_ID": AKA_APP_ID,
               "REALTIME_VOICE": "verse", "DB_CA_CERT": CA_CERT}
        result = self.run_script(env)
        self.assertEqual(result.returncode, 0, result.stderr)
        login, build, deploy = self.calls()
        self.assertEqual([c["plugin"] for c in (login, build, deploy)], ["aka"] * 3)
        self.assertEqual(login["args"], ["login"])
        self.assertEqual(login["SPIN_AKA_ACCESS_TOKEN"], TOKENS["SPIN_AKA_ACCESS_TOKEN"])
        self.assertEqual(build["args"][0], "build")
        self.assertEqual(deploy["args"][:3], ["deploy", "-f", str(DEPLOY_SCRIPT.parents[1] / "spin.toml")])
        self.assertIn("--no-confirm", deploy["args"])
        self.assertEqual(deploy["args"][deploy["args"].index("--app-id") + 1], AKA_APP_ID)

        self.assertEqual(self.passed_on_the_command_line(deploy), {}, "aka: values go in the file only")
        (path, file), = deploy["files"].items()
        self.assertEqual(file["mode"], 0o600)
        self.assertFalse(pathlib.Path(path).exists(), "the variables file outlives the script")
        passed = self.passed_in_files(deploy)
        self.assertEqual(passed["db_url"], SECRETS["DB_URL"])
        self.assertEqual(passed["classconnect_webhook_secret"], SECRETS["CLASSCONNECT_WEBHOOK_SECRET"])
        self.assertEqual(passed["realtime_voice"], "verse")
        self.assertEqual(passed["db_host"], "db.ref.supabase.co:5432")
        self.assertEqual(passed["db_ca_cert"], CA_CERT, "the PEM must arrive byte for byte")
        self.assertNotIn("openai_base_url", passed, "an unset optional variable is not passed")
        self.assertIn("SPIN_DEPLOY_PLUGIN=aka spin deploy", result.stdout)
        self.assert_no_secret_printed(result)

    def test_cloud_logs_in_with_its_token_and_passes_each_variable_as_name_value(self):
        env = {**SECRETS, **TOKENS, "CI": "true", "DEPLOY_TARGET": "cloud", "DB_CA_CERT": CA_CERT}
        result = self.run_script(env, "--no-build")
        self.assertEqual(result.returncode, 0, result.stderr)
        login, deploy = self.calls()
        self.assertEqual([login["plugin"], deploy["plugin"]], ["cloud", "cloud"])
        self.assertEqual(login["args"], ["login"])
        self.assertEqual(login["SPIN_AUTH_TOKEN"], TOKENS["FERMYON_CLOUD_TOKEN"])
        self.assertEqual(deploy["args"][0], "deploy")
        self.assertNotIn("--no-confirm", deploy["args"], "the cloud plugin has no such flag")
        self.assertNotIn("--app-id", deploy["args"])
        self.assertEqual(deploy["files"], {})
        passed = self.passed_on_the_command_line(deploy)
        self.assertEqual(passed["db_url"], SECRETS["DB_URL"])
        self.assertEqual(passed["db_ca_cert"], CA_CERT, "one argument, newlines included")
        self.assertEqual(passed["db_host"], "db.ref.supabase.co:5432")
        self.assertIn("SPIN_DEPLOY_PLUGIN=cloud spin deploy", result.stdout)
        self.assert_no_secret_printed(result)

    def test_spin_deploy_plugin_is_taken_when_deploy_target_is_unset(self):
        env = {**SECRETS, "SPIN_DEPLOY_PLUGIN": "cloud"}
        result = self.run_script(env, "--no-build")
        self.assertEqual(result.returncode, 0, result.stderr)
        (deploy,) = self.calls()
        self.assertEqual(deploy["plugin"], "cloud")

    def test_tokens_never_reach_a_command_line(self):
        for target in ("aka", "cloud"):
            with self.subTest(target):
                self.record.unlink(missing_ok=True)
                env = {**SECRETS, **TOKENS, "CI": "true", "AKA_APP_ID": AKA_APP_ID, "DEPLOY_TARGET": target}
                result = self.run_script(env)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual(len(self.calls()), 3)
                for call in self.calls():
                    for token in TOKENS.values():
                        self.assertNotIn(token, " ".join(call["args"]))

    def test_login_only_logs_in(self):
        env = {**SECRETS, **TOKENS, "CI": "true", "AKA_APP_ID": AKA_APP_ID}
        result = self.run_script(env, "--login")
        self.assertEqual(result.returncode, 0, result.stderr)
        (login,) = self.calls()
        self.assertEqual(login["args"], ["login"])

    def test_outside_ci_without_a_token_the_saved_login_is_used(self):
        result = self.run_script(SECRETS, "--no-build")
        self.assertEqual(result.returncode, 0, result.stderr)
        (deploy,) = self.calls()
        self.assertEqual(deploy["args"][0], "deploy")
        self.assertNotIn("--no-confirm", deploy["args"], "a person confirms")
        self.assertIn("no SPIN_AKA_ACCESS_TOKEN: the login that spin aka login saved is used", result.stdout)

    def test_extra_arguments_follow_the_variables(self):
        result = self.run_script({**SECRETS, "DEPLOY_TARGET": "cloud"}, "--no-build", "--", "--readiness-timeout", "120")
        self.assertEqual(result.returncode, 0, result.stderr)
        (deploy,) = self.calls()
        self.assertEqual(deploy["args"][-2:], ["--readiness-timeout", "120"])


class Refusals(Runs):
    """Each refusal names what is missing, runs nothing and prints no value."""

    def test_missing_token_under_ci_is_refused_by_name(self):
        for target, token in (("aka", "SPIN_AKA_ACCESS_TOKEN"), ("cloud", "FERMYON_CLOUD_TOKEN")):
            with self.subTest(target):
                other = {k: v for k, v in TOKENS.items() if k != token}
                env = {**SECRETS, **other, "CI": "true", "AKA_APP_ID": AKA_APP_ID, "DEPLOY_TARGET": target}
                result = self.run_script(env)
                self.assert_nothing_ran(result)
                self.assertIn(f"set {token}", result.stderr)

    def test_missing_required_variable_is_refused_by_name(self):
        for target in ("aka", "cloud"):
            with self.subTest(target):
                env = {k: v for k, v in SECRETS.items() if k != "SUPABASE_JWT_SECRET"}
                env.update({**TOKENS, "CI": "true", "AKA_APP_ID": AKA_APP_ID, "DEPLOY_TARGET": target})
                result = self.run_script(env)
                self.assert_nothing_ran(result)
                self.assertIn("supabase_jwt_secret (SPIN_VARIABLE_SUPABASE_JWT_SECRET or SUPABASE_JWT_SECRET)",
                              result.stderr)

    def test_every_problem_is_named_at_once(self):
        env = {"CI": "true", "DB_CA_CERT": "/etc/ssl/prod-ca-2021.crt"}
        result = self.run_script(env)
        self.assert_nothing_ran(result)
        for named in ("SPIN_AKA_ACCESS_TOKEN", "AKA_APP_ID", "db_url", "demo_db_url",
                      "supabase_jwt_secret", "classconnect_webhook_secret", "db_ca_cert is not PEM"):
            self.assertIn(named, result.stderr)

    def test_empty_required_variable_counts_as_missing(self):
        result = self.run_script({**SECRETS, "DB_URL": ""})
        self.assert_nothing_ran(result)
        self.assertIn("db_url (SPIN_VARIABLE_DB_URL or DB_URL)", result.stderr)

    def test_aka_under_ci_needs_the_app_id(self):
        result = self.run_script({**SECRETS, **TOKENS, "CI": "true"})
        self.assert_nothing_ran(result)
        self.assertIn("set AKA_APP_ID", result.stderr)

    def test_unknown_target_is_refused(self):
        for target, says in (("fly", "DEPLOY_TARGET must be aka (Akamai Functions) or cloud (Fermyon Cloud)"),
                             ("spinkube", "deploy/spinkube/README.md")):
            with self.subTest(target):
                result = self.run_script({**SECRETS, "DEPLOY_TARGET": target})
                self.assert_nothing_ran(result)
                self.assertIn(says, result.stderr)

    def test_deploy_target_and_spin_deploy_plugin_must_agree(self):
        result = self.run_script({**SECRETS, "DEPLOY_TARGET": "aka", "SPIN_DEPLOY_PLUGIN": "cloud"})
        self.assert_nothing_ran(result)
        self.assertIn("DEPLOY_TARGET is aka but SPIN_DEPLOY_PLUGIN is cloud", result.stderr)

    def test_ca_certificate_that_is_not_pem_is_refused_without_printing_it(self):
        lines = CA_CERT.split("\n")
        not_base64 = "\n".join([lines[0], "*" + lines[1][1:], *lines[2:]])
        for value in ("/etc/ssl/prod-ca-2021.crt", not_base64):
            with self.subTest(value[:20]):
                result = self.run_script({**SECRETS, "DB_CA_CERT": value})
                self.assert_nothing_ran(result)
                self.assertIn("db_ca_cert is not PEM", result.stderr)
                self.assertNotIn(value.strip(), result.stderr)

    def test_more_than_one_ca_certificate_is_refused(self):
        result = self.run_script({**SECRETS, "DB_CA_CERT": CA_CERT + CA_CERT})
        self.assert_nothing_ran(result)
        self.assertIn("db_ca_cert holds more than one certificate", result.stderr)

    def test_with_a_ca_a_connection_string_that_allows_plain_text_is_refused(self):
        for mode in ("disable", "allow"):
            with self.subTest(mode):
                url = SECRETS["DEMO_DB_URL"].replace("sslmode=require", f"sslmode={mode}")
                result = self.run_script({**SECRETS, "DEMO_DB_URL": url, "DB_CA_CERT": CA_CERT})
                self.assert_nothing_ran(result)
                self.assertIn(f"demo_db_url has sslmode={mode}, but with db_ca_cert set", result.stderr)
                self.assertNotIn("db_url has", result.stderr.replace("demo_db_url has", ""))

    def test_trusted_proxies_must_be_cidrs(self):
        result = self.run_script({**SECRETS, "TRUSTED_PROXIES": "10.244.0.0/16, ingress-nginx"})
        self.assert_nothing_ran(result)
        self.assertIn("trusted_proxies", result.stderr)
        self.assertIn("'ingress-nginx'", result.stderr)

    def test_missing_spin_is_refused_clearly(self):
        result = self.run_script(SECRETS, spin="/nonexistent/spin")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("spin is not installed", result.stderr)

    def test_db_host_that_differs_from_the_connection_strings_is_refused(self):
        result = self.run_script({**SECRETS, "DB_HOST": "db.ref.supabase.co:6543"})
        self.assert_nothing_ran(result)
        self.assertIn("db_url connects to db.ref.supabase.co:5432 but db_host is db.ref.supabase.co:6543",
                      result.stderr)


class Warnings(Runs):
    def test_with_a_ca_a_connection_string_without_sslmode_passes_as_the_functions_require_tls(self):
        env = {**SECRETS, "DEPLOY_TARGET": "cloud", "DB_CA_CERT": CA_CERT,
               "DB_URL": SECRETS["DB_URL"].replace("?sslmode=require", "")}
        result = self.run_script(env, "--no-build")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("warning", result.stderr)

    def test_without_a_ca_a_remote_database_gets_a_warning(self):
        result = self.run_script({**SECRETS, "DEPLOY_TARGET": "cloud"}, "--no-build")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("warning: db_ca_cert is empty", result.stderr)
        self.assert_no_secret_printed(result)


class Values(Runs):
    def test_spin_variable_names_win_over_plain_names(self):
        env = {**SECRETS, "DEPLOY_TARGET": "cloud", "SPIN_VARIABLE_SUPABASE_JWT_SECRET": "from-spin-variable"}
        result = self.run_script(env, "--no-build")
        self.assertEqual(result.returncode, 0, result.stderr)
        (deploy,) = self.calls()
        self.assertEqual(self.passed_on_the_command_line(deploy)["supabase_jwt_secret"], "from-spin-variable")

    def test_optional_variable_set_empty_is_passed_with_the_default_and_unset_is_not_passed(self):
        env = {**SECRETS, "DEPLOY_TARGET": "cloud", "OPENAI_BASE_URL": "", "TRUSTED_PROXIES": "", "DB_HOST": ""}
        result = self.run_script(env, "--no-build")
        self.assertEqual(result.returncode, 0, result.stderr)
        (deploy,) = self.calls()
        passed = self.passed_on_the_command_line(deploy)
        self.assertEqual(passed["openai_base_url"], spin_variables()["openai_base_url"]["default"])
        self.assertEqual(passed["trusted_proxies"], "")
        self.assertEqual(passed["db_host"], "db.ref.supabase.co:5432", "an empty db_host is derived")
        self.assertNotIn("realtime_voice", passed)

    def test_check_validates_and_runs_nothing(self):
        env = {**SECRETS, **TOKENS, "CI": "true", "AKA_APP_ID": AKA_APP_ID, "DB_CA_CERT": CA_CERT}
        result = self.run_script(env, "--check")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("check passed", result.stdout)
        self.assertIn("db_ca_cert", result.stdout)
        self.assertEqual(self.calls(), [])
        self.assertEqual(list(pathlib.Path(self.dir.name).glob("voice-edge-deploy.*")), [])
        self.assert_no_secret_printed(result)

    def test_print_db_host(self):
        result = self.run_script({"DB_URL": SECRETS["DB_URL"]}, "--print-db-host")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, "db.ref.supabase.co:5432\n")


@unittest.skipUnless(os.environ.get("REAL_SPIN"), "set REAL_SPIN to a spin binary to run through real Spin")
class RealSpin(Runs):
    """`spin login` and `spin deploy` of real Spin hand their arguments, unchanged, to the
    plugin SPIN_DEPLOY_PLUGIN names (here stand-ins that record them)."""

    def setUp(self):
        super().setUp()
        self.home = pathlib.Path(self.dir.name) / "home"
        self.home.mkdir()
        for plugin in ("aka", "cloud"):
            executable = pathlib.Path(self.dir.name) / plugin
            executable.write_text(FAKE_SPIN.replace('os.environ.get("SPIN_DEPLOY_PLUGIN")', repr(plugin)))
            executable.chmod(0o755)
            archive = pathlib.Path(self.dir.name) / f"{plugin}.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                tar.add(executable, arcname=plugin)
            manifest = pathlib.Path(self.dir.name) / f"{plugin}.json"
            manifest.write_text(json.dumps({
                "name": plugin, "description": "stand-in", "version": "0.0.1",
                "spinCompatibility": ">=1.0", "license": "Apache-2.0",
                "packages": [{"os": "linux", "arch": "amd64", "url": archive.as_uri(),
                              "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}]}))
            subprocess.run([os.environ["REAL_SPIN"], "plugins", "install", "--file", str(manifest), "--yes"],
                           env={**os.environ, "HOME": str(self.home)}, check=True,
                           capture_output=True, timeout=120)

    def test_real_spin_hands_login_and_deploy_to_the_plugin(self):
        for target in ("aka", "cloud"):
            with self.subTest(target):
                self.record.unlink(missing_ok=True)
                env = {**SECRETS, **TOKENS, "CI": "true", "AKA_APP_ID": AKA_APP_ID,
                       "DEPLOY_TARGET": target, "DB_CA_CERT": CA_CERT}
                result = self.run_script(env, "--no-build", spin=os.environ["REAL_SPIN"],
                                         extra_env={"HOME": str(self.home)})
                self.assertEqual(result.returncode, 0, result.stderr)
                login, deploy = self.calls()
                self.assertEqual((login["plugin"], login["args"]), (target, ["login"]))
                self.assertEqual((deploy["plugin"], deploy["args"][0]), (target, "deploy"))
                passed = {**self.passed_on_the_command_line(deploy), **self.passed_in_files(deploy)}
                self.assertEqual(passed["db_ca_cert"], CA_CERT)
                self.assertEqual(passed["classconnect_webhook_secret"], SECRETS["CLASSCONNECT_WEBHOOK_SECRET"])


if __name__ == "__main__":
    unittest.main()
