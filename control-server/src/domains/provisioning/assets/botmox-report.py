#!/usr/bin/env python3
# Bot-Mox guest reporter (Linux, cloud-init). Shipped unchanged in every
# NoCloud seed: it holds no per-VM value and reads everything from
# /etc/botmox/provision.json. cloud-init is Python, so python3 is present.
#
#   botmox-report finish            verify, then report cloud_init_done and
#                                   completed (cloud-init's runcmd calls this)
#   botmox-report verify            check the SMBIOS UUID and the token
#   botmox-report STEP STATUS [MSG] report a step (MSG becomes details.error)
#
# Calls are retried with backoff (2 s .. 60 s, 8 attempts) on network errors,
# 429 and 5xx. With server_cert_sha256 set, exactly that certificate is
# accepted. Log: /var/log/botmox-provision.log. Exit 1 on any failure.
import hashlib
import http.client
import json
import ssl
import sys
import time
import urllib.parse

CONFIG = "/etc/botmox/provision.json"
LOG = "/var/log/botmox-provision.log"


def log(msg):
    line = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + " " + msg
    print(line, flush=True)
    try:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass


def canonical(u):
    h = u.strip().strip("{}").replace("-", "").lower()
    if len(h) != 32 or any(c not in "0123456789abcdef" for c in h):
        return None
    return "-".join([h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]])


def swapped(u):
    p = u.split("-")
    rev = lambda s: "".join(reversed([s[i:i + 2] for i in range(0, len(s), 2)]))
    return "-".join([rev(p[0]), rev(p[1]), rev(p[2]), p[3], p[4]])


def uuid_matches(reported, vm_uuid):
    r, v = canonical(reported or ""), canonical(vm_uuid or "")
    return r is not None and v is not None and (r == v or swapped(r) == v)


def request(cfg, url, body):
    u = urllib.parse.urlsplit(url)
    data = json.dumps(body).encode("utf-8")
    delay = 2
    for attempt in range(1, 9):
        try:
            if u.scheme == "https":
                ctx = ssl.create_default_context()
                pin = cfg.get("server_cert_sha256")
                if pin:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=60, context=ctx)
                conn.connect()
                if pin:
                    der = conn.sock.getpeercert(binary_form=True)
                    if hashlib.sha256(der).hexdigest() != pin.lower():
                        raise RuntimeError("server certificate does not match the pinned SHA-256")
            else:
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
            path = u.path + ("?" + u.query if u.query else "")
            conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            if resp.status < 300:
                return json.loads(text)
            if 400 <= resp.status < 500 and resp.status != 429:
                raise PermissionError("HTTP %d: %s" % (resp.status, text[:300]))
            raise ConnectionError("HTTP %d" % resp.status)
        except PermissionError:
            raise
        except Exception as e:  # network errors, 429, 5xx
            log("POST %s failed (attempt %d): %s" % (url, attempt, e))
            if attempt == 8:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 60)


def report(cfg, step, status, details=None):
    log("progress: %s %s" % (step, status))
    request(cfg, cfg["report_progress_url"], {
        "token": cfg["token"], "vm_uuid": cfg["vm_uuid"],
        "step": step, "status": status, "details": details or {},
    })


def main(argv):
    with open(CONFIG, encoding="utf-8") as f:
        cfg = json.load(f)
    if argv[1:2] == ["finish"]:
        if main([argv[0], "verify"]) != 0:
            return 1
        try:
            report(cfg, "cloud_init_done", "completed")
            report(cfg, "completed", "completed")
        except Exception as e:
            log("FAILED to report: %s" % e)
            return 1
        log("provisioning complete")
        return 0
    if argv[1:2] == ["verify"]:
        try:
            with open("/sys/class/dmi/id/product_uuid", encoding="ascii") as f:
                reported = f.read().strip()
            if not uuid_matches(reported, cfg["vm_uuid"]):
                raise RuntimeError("SMBIOS UUID %s does not match vm_uuid %s" % (reported, cfg["vm_uuid"]))
            request(cfg, cfg["validate_token_url"], {"token": cfg["token"], "vm_uuid": cfg["vm_uuid"]})
        except Exception as e:
            log("FAILED verify: %s" % e)
            try:
                report(cfg, "completed", "failed", {"error": str(e), "failed_step": "verify"})
            except Exception as e2:
                log("could not report the failure: %s" % e2)
            return 1
        return 0
    if len(argv) < 3:
        log("usage: botmox-report verify | STEP STATUS [MESSAGE]")
        return 1
    details = {"error": argv[3]} if len(argv) > 3 else {}
    try:
        report(cfg, argv[1], argv[2], details)
    except Exception as e:
        log("FAILED to report %s %s: %s" % (argv[1], argv[2], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
