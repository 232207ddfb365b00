"""``make lint``'s dependency audit: pip-audit, skipped cleanly when it cannot reach its
advisory data, failing on real findings.

pip-audit needs the network (PyPI's JSON API by default). Without it, or behind a mirror
that answers nothing for the installed versions, it has audited nothing: that prints
"pip-audit skipped: no network" and exits 0, so an offline ``make lint`` still passes. A known
vulnerability in any installed distribution prints the findings and exits 1.

Usage: python .ci/pip_audit.py [extra pip-audit options]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

#: What requests/urllib3 say when there is no way out.
NETWORK_ERRORS = ("ConnectionError", "ProxyError", "NameResolutionError", "Max retries exceeded",
                  "Temporary failure in name resolution", "Network is unreachable", "timed out",
                  "ConnectTimeout", "ReadTimeout", "SSLError")


def pip_audit_command() -> list[str]:
    beside_python = Path(sys.executable).with_name("pip-audit")
    found = str(beside_python) if beside_python.exists() else shutil.which("pip-audit")
    if found is None:
        print("pip-audit is not installed: pip install -e '.[test]'", file=sys.stderr)
        raise SystemExit(1)
    return [found]


def main(argv: list[str]) -> int:
    command = [*pip_audit_command(), "--skip-editable", "--progress-spinner", "off",
               "--format", "json", *argv]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        print("pip-audit skipped: no network (no answer in 10 minutes)")
        return 0
    try:
        report = json.loads(result.stdout)
    except ValueError:
        if any(marker in result.stderr for marker in NETWORK_ERRORS):
            print("pip-audit skipped: no network")
            return 0
        sys.stderr.write(result.stderr)
        return result.returncode or 1

    dependencies = report.get("dependencies", [])
    audited = [dep for dep in dependencies if "skip_reason" not in dep]
    vulnerable = [dep for dep in audited if dep.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            aliases = ", ".join(vuln.get("aliases") or [])
            print(f"{dep['name']} {dep['version']}: {vuln['id']} ({aliases}); fixed in {fixes}")
    if vulnerable:
        print(f"pip-audit: {len(vulnerable)} installed distributions have known vulnerabilities.")
        return 1
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        return result.returncode
    if not audited:
        print("pip-audit skipped: no network (no advisory data for any installed package)")
        return 0
    skipped = len(dependencies) - len(audited)
    print(f"pip-audit: no known vulnerabilities in {len(audited)} distributions"
          + (f" ({skipped} could not be audited)" if skipped else "") + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
