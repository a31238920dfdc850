"""scripts/spin-version.sh: the oldest Spin the app runs on, and the check `make up` and
the Spin pass of `make test` make of the Spin they find.
Run: python3 -m unittest discover -s deploy/tests"""
import os
import subprocess
import tempfile
import unittest

from common import SPIN_VERSION_SCRIPT, min_spin_cli_version, min_spin_version


class SpinVersionCheck(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def spin_printing(self, line):
        """A stand-in `spin` whose `--version` prints `line`."""
        path = os.path.join(self.dir.name, "spin")
        with open(path, "w") as handle:
            handle.write(f"#!/bin/sh\necho '{line}'\n")
        os.chmod(path, 0o755)
        return path

    def check(self, line):
        return subprocess.run([SPIN_VERSION_SCRIPT, "check", self.spin_printing(line)],
                              capture_output=True, text=True)

    def test_the_minimum_is_spin_4_1_0(self):
        # WASIp3 components exporting wasi:http/handler@0.3.0: Spin's main since 2026-07-07.
        self.assertEqual(min_spin_version(), (4, 1, 0))

    def test_the_cli_minimum_is_spin_4_0_0(self):
        self.assertEqual(min_spin_cli_version(), (4, 0, 0))

    def test_releases_and_builds_at_or_past_the_minimum_pass_silently(self):
        for line in ("spin 4.1.0-pre0 (94a8fc8a 2026-08-21)", "spin 4.1.0 (1234567 2026-10-01)",
                     "spin 4.2.1 (abcdef0 2027-01-01)", "spin 10.0.0 (abc 2030-01-01)"):
            result = self.check(line)
            self.assertEqual(result.returncode, 0, line)
            self.assertEqual(result.stderr, "", line)

    def test_an_older_spin_is_refused_naming_its_version_and_what_to_do(self):
        for line, version in (("spin 4.0.2 (1234567 2026-06-23)", "4.0.2"),
                              ("spin 4.0.0 (f00dcafe 2026-04-20)", "4.0.0"),
                              ("spin 3.6.3 (deadbee 2025-12-01)", "3.6.3"),
                              ("spin 2.7.0 (0000000 2024-08-01)", "2.7.0"),
                              ("spin 3.10.0 (0000000 2026-01-01)", "3.10.0")):
            result = self.check(line)
            self.assertEqual(result.returncode, 3, line)
            self.assertIn(f"is Spin {version}", result.stderr)
            self.assertIn("needs Spin 4.1.0 or newer", result.stderr)
            self.assertIn("wasi:http/handler@0.3.0", result.stderr)
            self.assertIn("RUNTIME=host make up", result.stderr)

    def test_a_pre_release_of_the_minimum_from_before_wasi_0_3_0_is_refused(self):
        # Spin's main says 4.1.0-pre0 since 2026-04-20; it serves wasi:http/handler@0.3.0
        # only since 2026-07-07.
        for line in ("spin 4.1.0-pre0 (ffbf15b7 2026-04-20)", "spin 4.1.0-pre0 (0000000 2026-07-06)"):
            result = self.check(line)
            self.assertEqual(result.returncode, 3, line)
            self.assertIn("pre-release built on 2026-0", result.stderr)
            self.assertIn("from 2026-07-07 on", result.stderr)
            self.assertIn("RUNTIME=host make up", result.stderr)
        for line in ("spin 4.1.0-pre0 (6900ea41 2026-07-07)", "spin 4.1.0-pre1 (94a8fc8a 2026-08-21)"):
            result = self.check(line)
            self.assertEqual(result.returncode, 0, line)
            self.assertEqual(result.stderr, "", line)

    def test_a_binary_without_a_version_is_refused(self):
        result = self.check("not a spin at all")
        self.assertEqual(result.returncode, 3)
        self.assertIn("could not read a version", result.stderr)
        self.assertIn("needs Spin 4.1.0 or newer", result.stderr)

    def test_an_unknown_subcommand_prints_the_usage(self):
        result = subprocess.run([SPIN_VERSION_SCRIPT, "max"], capture_output=True, text=True)
        self.assertEqual(result.returncode, 2)
        self.assertIn("min | cli-min | check SPIN_BIN", result.stderr)


if __name__ == "__main__":
    unittest.main()
