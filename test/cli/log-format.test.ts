import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, prettyLine } from '../../src/log/pretty.ts';

function sink(isTTY: boolean): Writable & { isTTY: boolean; text: () => string } {
  let text = '';
  const w = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  }) as Writable & { isTTY: boolean; text: () => string };
  w.isTTY = isTTY;
  w.text = () => text;
  return w;
}

describe('log format', () => {
  it('pretty: one line per event, level, message and fields', () => {
    const line = prettyLine(
      JSON.stringify({
        level: 40,
        time: Date.UTC(2026, 0, 1, 1, 2, 3, 4),
        pid: 1,
        hostname: 'h',
        msg: 'RTMP output dropped',
        stream: 'cam 1',
        n: 2,
        o: { a: 1 },
      }),
    );
    expect(line).toBe('01:02:03.004 WARN  RTMP output dropped stream="cam 1" n=2 o={"a":1}\n');
  });

  it('auto is pretty on a terminal, JSON otherwise; json and pretty force it', () => {
    const tty = sink(true);
    createLogger({}, 'auto', tty).info({ k: 'v' }, 'hello');
    expect(tty.text()).toMatch(/^\d\d:\d\d:\d\d\.\d{3} .*INFO.* hello k=v\n$/);
    const pipe = sink(false);
    createLogger({}, 'auto', pipe).info({ k: 'v' }, 'hello');
    expect(JSON.parse(pipe.text())).toMatchObject({ level: 30, msg: 'hello', k: 'v' });
    const forcedJson = sink(true);
    createLogger({}, 'json', forcedJson).info('x');
    expect(JSON.parse(forcedJson.text()).msg).toBe('x');
    const forcedPretty = sink(false);
    createLogger({}, 'pretty', forcedPretty).warn('y');
    expect(forcedPretty.text()).toMatch(/ WARN {2}y\n$/);
  });
});
