/** What any child process may need from ours: where programs are, who and where it runs, language and time zone. */
const BASE_VARIABLES = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR'];

/**
 * The environment a child process gets: only the variables above and the locale's LC_*, never
 * the rest of ours, which holds the database password, the encryption key and whatever secrets
 * a cron job or a unit file exported for other programs. `extra` adds what one child needs.
 */
export function minimalChildEnvironment(from: Readonly<Record<string, string | undefined>> = process.env, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(from)) {
    if (value !== undefined && (BASE_VARIABLES.includes(name) || name.startsWith('LC_'))) env[name] = value;
  }
  return {...env, ...extra};
}
