// The rate-vs-clients plot as a standalone SVG: one line per (server, client),
// x = clients (log2 axis), y = rate, with a bar for each point's range over
// the rounds. Plain string building, no dependencies.

export interface Series {
  label: string;
  /** Series with the same colour key share a colour (one server under several clients). */
  colorKey: string;
  dashed?: boolean;
  points: Array<{ clients: number; rate: number; min: number; max: number }>;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const W = 900;
const H = 420;
const M = { left: 80, right: 330, top: 40, bottom: 50 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A round axis maximum: 1, 2 or 5 × 10^k at or above `v`. */
function niceMax(v: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(v, 1)));
  return [1, 2, 5, 10].map((m) => m * p).find((n) => n >= v)!;
}

export function plotSvg(title: string, series: Series[]): string {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.clients)))].sort((a, b) => a - b);
  const top = niceMax(Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.max))) * 1.05);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const lx = (c: number) => {
    const lo = Math.log2(xs[0] ?? 1);
    const hi = Math.log2(xs[xs.length - 1] ?? 2);
    return M.left + (hi === lo ? pw / 2 : ((Math.log2(c) - lo) / (hi - lo)) * pw);
  };
  const ly = (r: number) => M.top + ph - (r / top) * ph;
  const o: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (top / 5) * i;
    const y = ly(v).toFixed(1);
    o.push(
      `<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${Math.round(v).toLocaleString('en-US')}</text>`,
    );
  }
  for (const c of xs) {
    const x = lx(c).toFixed(1);
    o.push(
      `<line x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + ph}" stroke="#eee"/>`,
      `<text x="${x}" y="${M.top + ph + 18}" text-anchor="middle">${c}</text>`,
    );
  }
  o.push(
    `<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">clients</text>`,
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">messages/s</text>`,
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`,
  );
  const keys = [...new Set(series.map((s) => s.colorKey))];
  series.forEach((s, i) => {
    const color = COLORS[keys.indexOf(s.colorKey) % COLORS.length]!;
    const pts = [...s.points].sort((a, b) => a.clients - b.clients);
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    // each series a few pixels aside, so range bars at the same x stay apart
    const nudge = (i - (series.length - 1) / 2) * 4;
    o.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${pts.map((p) => `${(lx(p.clients) + nudge).toFixed(1)},${ly(p.rate).toFixed(1)}`).join(' ')}"/>`,
    );
    for (const p of pts) {
      const x = (lx(p.clients) + nudge).toFixed(1);
      o.push(
        `<line x1="${x}" x2="${x}" y1="${ly(p.min).toFixed(1)}" y2="${ly(p.max).toFixed(1)}" stroke="${color}"/>`,
        `<circle cx="${x}" cy="${ly(p.rate).toFixed(1)}" r="3.5" fill="${color}"/>`,
      );
    }
    const y = M.top + 10 + i * 20;
    o.push(
      `<line x1="${W - M.right + 16}" x2="${W - M.right + 40}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2"${dash}/>`,
      `<text x="${W - M.right + 46}" y="${y}" dominant-baseline="middle">${esc(s.label)}</text>`,
    );
  });
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}
