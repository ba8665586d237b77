// Debian's Chromium (apt-get install chromium), headless, driven by playwright-core (npm ci):
// playwright's own browser download cannot run on these machines, so it is pointed at the system one.
import { chromium } from "playwright-core";

// This machine's network is closed: Chromium's own background connections (updates, sync,
// safe browsing) would only fail, so they are switched off.
const QUIET_FLAGS = [
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-default-apps",
];

export async function launchChromium(executablePath) {
  return chromium.launch({ executablePath, headless: true, chromiumSandbox: false, args: QUIET_FLAGS });
}
