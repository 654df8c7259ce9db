#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver, which the console's browser
# tests drive, when they are missing. Safe to run twice and concurrently
# (apt's own lock serialises installs).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! sudo_if_needed apt-get install -y -q chromium chromium-driver >/dev/null; then
    sudo_if_needed apt-get update -q >/dev/null
    sudo_if_needed apt-get install -y -q chromium chromium-driver >/dev/null
fi
