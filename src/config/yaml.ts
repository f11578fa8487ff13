import { readFileSync } from 'node:fs';
import { type Document, isAlias, isMap, isScalar, isSeq, type Node, parseDocument, Scalar } from 'yaml';
import { ConfigError } from './errors.ts';
import type { Raw } from './parse.ts';
import { type AnyKeyDef, BY_FLAG, closest, KEYS, SECTIONS } from './schema.ts';

/** A value set by some layer, and where it came from (for error messages). */
export interface Setting {
  readonly raw: Raw;
  readonly source: string | undefined;
}

const NULLS = new Set(['', '~', 'null', 'Null', 'NULL']);

/** A YAML value as Raw: every scalar stays the text as written (failsafe schema); null -> undefined. */
function toRaw(node: unknown, doc: Document, file: string, where: string): Raw | undefined {
  if (isAlias(node)) return toRaw(node.resolve(doc), doc, file, where);
  if (node === null || node === undefined) return undefined;
  if (isScalar(node)) {
    const text = String(node.value ?? '');
    if (node.type === Scalar.PLAIN && NULLS.has(text)) return undefined;
    return text;
  }
  if (isSeq(node)) return node.items.map((n, i) => toRaw(n, doc, file, `${where}[${i}]`) ?? '');
  if (isMap(node)) {
    const out: Record<string, Raw> = {};
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (k === undefined) throw new ConfigError('config', `${where} has a non-scalar key`, file);
      out[k] = toRaw(pair.value, doc, file, `${where}.${k}`) ?? '';
    }
    return out;
  }
  throw new ConfigError('config', `${where} has an unsupported YAML value`, file);
}

const YAML_PATHS = KEYS.map((k) => k.yaml.join('.'));

function unknownKey(path: string, file: string): ConfigError {
  const asFlag = BY_FLAG.get(path);
  const hint = asFlag
    ? `; write it as ${asFlag.yaml.join('.')}`
    : (() => {
        const s = closest(path, YAML_PATHS);
        return s ? `; did you mean ${s}?` : '';
      })();
  return new ConfigError(path, `unknown key${hint}`, path, file);
}

/**
 * Reads one YAML config file into settings keyed by flag name. `missingOk`: a file that
 * does not exist yields no settings (used for config/default.yaml).
 */
export function readYamlFile(file: string, missingOk: boolean, shownAs = file): Map<string, Setting> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && missingOk) return new Map();
    const why = code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(err)})`;
    throw new ConfigError('config', shownAs === file ? why : `${why}: ${file}`, shownAs);
  }
  const doc = parseDocument(text, { schema: 'failsafe', prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // Only the first line: the rest is a code frame that could quote a secret.
    const msg = doc.errors[0].message.split('\n')[0].replace(/:$/, '');
    throw new ConfigError('config', `invalid YAML in ${file}: ${msg}`, shownAs);
  }
  const out = new Map<string, Setting>();
  const root = doc.contents as Node | null;
  if (
    root === null ||
    (isScalar(root) && root.type === Scalar.PLAIN && NULLS.has(String(root.value ?? '')))
  ) {
    return out;
  }
  if (!isMap(root)) throw new ConfigError('config', `${file} must contain a YAML mapping of keys`, shownAs);
  const set = (k: AnyKeyDef, raw: Raw | undefined) => {
    if (raw !== undefined) out.set(k.flag, { raw, source: file });
  };
  for (const pair of root.items) {
    const name = isScalar(pair.key) ? String(pair.key.value) : '';
    if ((SECTIONS as readonly string[]).includes(name)) {
      const sectionNode = isAlias(pair.value) ? pair.value.resolve(doc) : pair.value;
      if (toRaw(sectionNode, doc, file, name) === undefined) continue;
      if (!isMap(sectionNode)) {
        throw new ConfigError(name, `must be a mapping of ${name}.* keys`, name, file);
      }
      for (const sub of sectionNode.items) {
        const leaf = isScalar(sub.key) ? String(sub.key.value) : '';
        const k = KEYS.find((d) => d.yaml.length === 2 && d.yaml[0] === name && d.yaml[1] === leaf);
        if (!k) throw unknownKey(`${name}.${leaf}`, file);
        set(k, toRaw(sub.value, doc, file, `${name}.${leaf}`));
      }
      continue;
    }
    const k = KEYS.find((d) => d.yaml.length === 1 && d.yaml[0] === name);
    if (!k) throw unknownKey(name, file);
    set(k, toRaw(pair.value, doc, file, name));
  }
  return out;
}
