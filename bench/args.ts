/** A bench's numeric option from its command line (`--rows 60000`), or `def` when absent. */
export function numberArg(name: string, def: number, argv = process.argv.slice(2)): number {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : def;
}
