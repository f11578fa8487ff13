// Fills the orchestrator table from GET /orchestrators.
const body = document.getElementById('orchestrators');

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function load() {
  try {
    const res = await fetch('/orchestrators');
    const { orchestrators } = await res.json();
    body.replaceChildren(
      ...orchestrators.map((o) => {
        const tr = document.createElement('tr');
        tr.append(
          cell(o.url),
          cell(o.ok ? 'reachable' : `unreachable: ${o.error}`, o.ok ? 'ok' : 'bad'),
          cell(o.liveModels.join(', ') || '—'),
          cell(o.ok ? `${o.pricePerUnit ?? 0} / ${o.pixelsPerUnit ?? 1}` : '—'),
          cell(o.latencyMs === undefined ? '—' : `${o.latencyMs} ms`),
        );
        return tr;
      }),
    );
  } catch (err) {
    body.replaceChildren(cell(`Could not load: ${err}`, 'bad'));
  }
}

load();
setInterval(load, 10_000);
