// Fills the orchestrator table from GET /orchestrators[?model=ID]: state and why for each one.
const body = document.getElementById('orchestrators');
const modelSelect = document.getElementById('orchestrator-model');
const knownModels = new Set();

const STATE_CLASS = { available: 'ok', pending: '', busy: '' };

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** One row across the whole table. */
function message(text, className) {
  const tr = document.createElement('tr');
  const td = cell(text, className);
  td.colSpan = 7;
  tr.append(td);
  return tr;
}

function price(p) {
  if (!p) return '—';
  return `${p.pricePerUnit} / ${p.pixelsPerUnit} (${p.weiPerPixel} wei/pixel)`;
}

function failures(o) {
  if (!o.failures) return '0';
  const until = o.suspendedUntil ? `, skipped until ${new Date(o.suspendedUntil).toLocaleTimeString()}` : '';
  return `${o.failures}${until}`;
}

function addModels(orchestrators) {
  for (const o of orchestrators) {
    for (const m of o.models) {
      if (knownModels.has(m)) continue;
      knownModels.add(m);
      const option = document.createElement('option');
      option.value = m;
      option.textContent = m;
      modelSelect.append(option);
    }
  }
}

async function load() {
  try {
    const model = modelSelect.value;
    const res = await fetch(model ? `/orchestrators?model=${encodeURIComponent(model)}` : '/orchestrators');
    const { orchestrators } = await res.json();
    addModels(orchestrators);
    if (orchestrators.length === 0) {
      body.replaceChildren(message('No orchestrator is configured or discovered yet.'));
      return;
    }
    body.replaceChildren(
      ...orchestrators.map((o) => {
        const tr = document.createElement('tr');
        tr.append(
          cell(o.url),
          cell(o.state, STATE_CLASS[o.state] ?? 'bad'),
          cell(o.why),
          cell(o.models.join(', ') || '—'),
          cell(price(o.price)),
          cell(o.latencyMs === null ? '—' : `${o.latencyMs} ms`),
          cell(failures(o), o.suspendedUntil ? 'bad' : ''),
        );
        return tr;
      }),
    );
  } catch (err) {
    body.replaceChildren(message(`Could not load: ${err}`, 'bad'));
  }
}

modelSelect.addEventListener('change', load);
load();
setInterval(load, 5_000);
