// Command-line flags that are not config keys (a command's own, `--chainId`), taken out of argv
// before loadConfig() sees the rest.

export class ArgsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArgsError';
  }
}

export interface SplitArgs {
  /** The command's own flags, by name (last one wins). */
  own: Map<string, string>;
  /** Everything else, for loadConfig(). */
  config: string[];
}

/**
 * Takes the flags named in `own` out of argv. Any other `-flag` without `=value` is a config flag
 * and keeps the argument after it as its value, so a value such as a password is never mistaken
 * for one of the command's flags.
 */
export function splitArgs(argv: readonly string[], own: readonly string[]): SplitArgs {
  const found = new Map<string, string>();
  const config: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      config.push(...argv.slice(i));
      break;
    }
    const m = /^--?([^-=][^=]*)(?:=([\s\S]*))?$/.exec(arg);
    if (!m) {
      config.push(arg);
      continue;
    }
    const [, name, inline] = m as unknown as [string, string, string | undefined];
    if (own.includes(name)) {
      if (inline !== undefined) found.set(name, inline);
      else if (i + 1 < argv.length) found.set(name, argv[++i]!);
      else throw new ArgsError(`--${name} needs a value (--${name} value or --${name}=value)`);
      continue;
    }
    config.push(arg);
    const isBool = name === 'help' || name === 'h';
    if (inline === undefined && !isBool && i + 1 < argv.length) config.push(argv[++i]!);
  }
  return { own: found, config };
}
