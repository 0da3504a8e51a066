/**
 * A small SVG line chart against threads: images/s, images/s per thread, and images per CPU-second;
 * the floors (one thread, images per CPU-second) as dashed lines, to compare with the last.
 */
export function renderChart(points: { threads: number; ips: number; ipsPerThread: number; ipcs: number }[], floors: { bare: number; decode: number }): string {
  const W = 680,
    H = 390,
    L = 60,
    R = 190,
    T = 30,
    B = 80;
  const maxX = Math.max(...points.map((p) => p.threads), 1);
  const maxY = Math.max(...points.map((p) => Math.max(p.ips, p.ipcs)), floors.bare, floors.decode) * 1.15;
  const x = (t: number) => L + (W - L - R) * (maxX === 1 ? 0.5 : (t - 1) / (maxX - 1));
  const y = (v: number) => H - B - ((H - T - B) * v) / maxY;
  const line = (vals: [number, number][], color: string) =>
    `<polyline fill="none" stroke="${color}" stroke-width="2.5" points="${vals.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(' ')}"/>` +
    vals.map(([a, b]) => `<circle cx="${x(a).toFixed(1)}" cy="${y(b).toFixed(1)}" r="4" fill="${color}"/>`).join('');
  const hline = (v: number, color: string, label: string) =>
    `<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="${color}" stroke-dasharray="6 4"/>` +
    `<text x="${W - R + 6}" y="${(y(v) + 4).toFixed(1)}" font-size="11" fill="${color}">${label}</text>`;
  const ticksY = Array.from({ length: 6 }, (_, i) => (maxY * i) / 5);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${L}" y="18" font-size="14">pcb throughput against --threads</text>
<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>
${points.map((p) => `<text x="${x(p.threads)}" y="${H - B + 18}" font-size="11" text-anchor="middle">${p.threads}</text>`).join('')}
${ticksY.map((v) => `<text x="${L - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v.toFixed(1)}</text>`).join('')}
<text x="${(L + W - R) / 2}" y="${H - B + 36}" font-size="12" text-anchor="middle">threads</text>
<text x="14" y="${(T + H - B) / 2}" font-size="12" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">images / s</text>
${line(
  points.map((p) => [p.threads, p.ips]),
  '#1f77b4',
)}
${line(
  points.map((p) => [p.threads, p.ipsPerThread]),
  '#ff7f0e',
)}
${line(
  points.map((p) => [p.threads, p.ipcs]),
  '#9467bd',
)}
${hline(floors.bare, '#2ca02c', 'bare sharp (img/CPU-s)')}
${hline(floors.decode, '#d62728', 'decode floor (img/CPU-s)')}
<text x="${L}" y="${H - 10}" font-size="11" fill="#1f77b4">■ images/s</text>
<text x="${L + 110}" y="${H - 10}" font-size="11" fill="#ff7f0e">■ images/s per thread</text>
<text x="${L + 270}" y="${H - 10}" font-size="11" fill="#9467bd">■ pcb images per CPU-s (steady)</text>
</svg>
`;
}
