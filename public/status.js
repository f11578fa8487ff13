const body = document.getElementById('streams');

function cell(content) {
  const td = document.createElement('td');
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

/** What the stream runs now: params.effect (else the model), then the other params. */
function effect(s) {
  const params = s.params ?? {};
  const name = typeof params.effect === 'string' ? params.effect : s.model;
  const rest = Object.entries(params)
    .filter(([k]) => k !== 'effect')
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return [name, ...rest].join(' · ');
}

/** One row across the whole table. */
function message(text) {
  const tr = document.createElement('tr');
  const td = cell(text);
  td.colSpan = 13;
  tr.append(td);
  return tr;
}

async function load() {
  try {
    const { streams, hidden = 0 } = await (await fetch('/live/streams')).json();
    // Streams published with a credential are listed to the operator only.
    const protectedRow = hidden
      ? [
          message(
            `${hidden} protected stream${hidden === 1 ? '' : 's'} not listed (they need the operator token).`,
          ),
        ]
      : [];
    if (!streams.length) {
      body.replaceChildren(...(hidden ? protectedRow : [message('No live stream.')]));
      return;
    }
    body.replaceChildren(
      ...protectedRow,
      ...streams.map((s) => {
        const watch = document.createElement('a');
        watch.href = `/watch.html?stream=${encodeURIComponent(s.stream)}`;
        watch.textContent = 'watch';
        const tr = document.createElement('tr');
        tr.append(
          cell(s.stream),
          cell(s.stateReason ? `${s.state}: ${s.stateReason}` : s.state),
          cell(s.model),
          cell(effect(s)),
          cell(s.orchestrator ?? '—'),
          cell(`${s.input.fps} / ${s.input.bitrateKbps}`),
          cell(`${s.output.fps} / ${s.output.bitrateKbps}`),
          cell(`${s.input.segments} / ${s.output.segments}`),
          cell(String(s.viewers)),
          cell(s.latencyMs ? `${s.latencyMs.p50} / ${s.latencyMs.p95}` : '—'),
          cell(
            s.swaps.length
              ? `${s.swaps.length}: ${s.swaps.map((w) => `${w.from} → ${w.to ?? '…'} (${w.reason})`).join('; ')}`
              : '0',
          ),
          cell(s.endReason ?? s.lastError ?? ''),
          cell(watch),
        );
        return tr;
      }),
    );
  } catch (err) {
    body.replaceChildren(message(`Could not load: ${err}`));
  }
}

load();
setInterval(load, 2000);
