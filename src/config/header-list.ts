/**
 * go-livepeer's header flags (`-liveAIHeartbeatHeaders`, `-remoteSignerHeaders`, ...):
 * `Name:value,Name2:value2`, split on "," then on the first ":", both sides trimmed; items without
 * ":" or with an empty name are dropped; a repeated name keeps the last value
 * (go-livepeer@176aa41:cmd/livepeer/starter/starter.go parseHeaders).
 */
export function parseHeaderList(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const item of text.split(',')) {
    const colon = item.indexOf(':');
    if (colon < 0) continue;
    const name = item.slice(0, colon).trim();
    if (name) headers[name] = item.slice(colon + 1).trim();
  }
  return headers;
}
