#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tokentap end to end, probe-site selection (src/attach/sites.c, issue 7): BPF attached.

With the default (--probe-sites auto) Debian 12's libssl.so.3 (a standard library, attached
before ready) gets its SSL_write and SSL_read probes on emulated instructions (an entry site at
+0x16, a return site at +0x38), verified in a child before use; SSL_write_ex/SSL_read_ex keep
the classic pair. curl (SSL_write/SSL_read, so
the emulated sites) and python urllib (SSL_write_ex/SSL_read_ex, so the classic pair in the same
file) make plain, streamed and big calls; every span is checked field by field as test_e2e.py
does. The same calls are traced again with --probe-sites classic, which must log no emulated
site. On a libssl without safe sites the suite checks only that the fallback is logged.

Environment and usage as test_e2e.py; the last line printed is "sites: N passed, N failed".
"""
import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_e2e as h  # noqa: E402

LIBSSL = "/usr/lib/x86_64-linux-gnu/libssl.so.3"


def debian12():
    try:
        return Path("/etc/debian_version").read_text().startswith("12")
    except OSError:
        return False


class SitesCase(h.TracedCase):
    @classmethod
    def workload_curl(cls):
        got = h.run_curl(h.call("openai", "gpt-4o", "sites-curl-plain", max_tokens=64,
                                text=h.words(3)), cls.work)
        got += h.run_curl(h.call("anthropic", "claude-sonnet-4-5", "sites-curl-stream",
                                 stream=True, max_tokens=8, text=h.words(2)), cls.work)
        got += h.run_curl(h.call("openai", "gpt-4o", "sites-curl-big", stream=True,
                                 headers={"x-mock-big": "200"}), cls.work)
        return got

    @classmethod
    def workload_urllib(cls):
        return h.run_python([
            h.call("openai", "gpt-4.1", "sites-py-plain", text=h.words(4)),
            h.call("anthropic", "claude-haiku-4-5", "sites-py-stream", stream=True,
                   max_tokens=5)])

    def tt_log(self):
        return self.tt.err_path.read_text(errors="replace")

    def test_curl_spans(self):
        self.check_workload("curl")

    def test_urllib_spans(self):
        self.check_workload("urllib")


class TestSitesAuto(SitesCase):
    tokentap_args = ["--format", "json", "-v"]

    def test_sites_chosen_and_verified(self):
        log = self.tt_log()
        for fn in ("SSL_write", "SSL_read"):
            emulated = re.search(rf"probe sites: {fn} of {re.escape(LIBSSL)} at \+0x[0-9a-f]+ / "
                                 r"\+0x[0-9a-f]+ \(emulated, verified\)", log)
            classic = re.search(rf"probe sites: {fn} (keeps the classic pair|of .* failed)", log)
            self.assertTrue(emulated or classic, f"{fn}: no probe-site decision logged")
            if debian12():
                self.assertTrue(emulated, f"{fn}: Debian 12's libssl has a verified site:\n{log}")
        for fn in ("SSL_write_ex", "SSL_read_ex"):
            self.assertRegex(log, rf"probe sites: {fn} keeps the classic pair")
        if debian12():
            self.assertIn(f"OpenSSL probes attached to {LIBSSL} (symbols, emulated probe sites)",
                          log)
            self.assertIn("at +0x16 / +0x38 (emulated, verified)", log)


class TestSitesClassic(SitesCase):
    tokentap_args = ["--format", "json", "-v", "--probe-sites", "classic"]

    def test_no_emulated_site(self):
        log = self.tt_log()
        self.assertNotIn("emulated", log)
        self.assertIn(f"OpenSSL probes attached to {LIBSSL} (symbols)", log)


def main():
    h.run_suite("sites", __name__)


if __name__ == "__main__":
    main()
