// Debian's Firefox ESR under test, driven over WebDriver BiDi (puppeteer-core launches it; it
// downloads no browser). A fresh profile each launch: fake camera and microphone with no prompt,
// loopback ICE with plain host addresses, and every background service that would reach outside
// this machine switched off (updates, telemetry, remote settings, captive portal, safe browsing,
// plugin (OpenH264) downloads, DNS prefetch, DoH).
import { existsSync } from 'node:fs';
import puppeteer, { type Browser } from 'puppeteer-core';

export const FIREFOX = '/usr/bin/firefox-esr';

/** Where a background service would go: a closed port on loopback, never a real host. */
const NOWHERE = 'http://127.0.0.1:9/';

export const FIREFOX_PREFS: Record<string, string | number | boolean> = {
  // Media: a synthetic camera and microphone, granted without a prompt.
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.autoplay.default': 0,
  // WebRTC between Firefox and the gateway on 127.0.0.1.
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.default_address_only': false,
  'media.peerconnection.default_iceservers': '[]',
  // No network beyond this machine.
  'network.dns.disableIPv6': true,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.predictor.enabled': false,
  'network.http.speculative-parallel-limit': 0,
  'network.trr.mode': 5,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.sntp.pools': '127.0.0.1',
  'app.update.enabled': false,
  'app.update.auto': false,
  'app.update.disabledForTesting': true,
  'app.normandy.enabled': false,
  'app.normandy.api_url': '',
  'app.shield.optoutstudies.enabled': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.archive.enabled': false,
  'toolkit.telemetry.server': NOWHERE,
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.healthreport.documentServerURI': NOWHERE,
  'browser.ping-centre.telemetry': false,
  'browser.newtabpage.activity-stream.feeds.telemetry': false,
  'browser.newtabpage.activity-stream.telemetry': false,
  'browser.newtabpage.activity-stream.feeds.topsites': false,
  'browser.topsites.contile.enabled': false,
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.downloads.remote.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'browser.safebrowsing.provider.google4.updateURL': '',
  'browser.safebrowsing.provider.google.updateURL': '',
  'browser.search.update': false,
  'browser.search.geoip.url': '',
  'services.settings.server': NOWHERE,
  'extensions.update.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'extensions.blocklist.enabled': false,
  'extensions.systemAddon.update.enabled': false,
  'extensions.webservice.discoverURL': NOWHERE,
  'identity.fxaccounts.enabled': false,
  'geo.enabled': false,
  'security.OCSP.enabled': 0,
  'security.remote_settings.crlite_filters.enabled': false,
  'security.remote_settings.intermediates.enabled': false,
  // Media plugins (OpenH264, Widevine) are downloads: none here, as on an offline machine.
  'media.gmp-manager.updateEnabled': false,
  'media.gmp-manager.url': NOWHERE,
  'media.gmp-gmpopenh264.autoupdate': false,
};

export const hasFirefox = () => existsSync(FIREFOX);

/** Starts headless Firefox ESR with a fresh profile; close it with `browser.close()`. */
export function launchFirefox(prefs: Record<string, string | number | boolean> = {}): Promise<Browser> {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: { ...FIREFOX_PREFS, ...prefs },
    env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: '1' },
    protocolTimeout: 60_000,
  });
}
