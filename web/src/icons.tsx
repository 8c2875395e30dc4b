// Small inline icons (no icon font: nothing to load, and they render without emoji fonts).
const svg = (d: string) => () => (
  <svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
    <path d={d} />
  </svg>
);

export const Volume = svg("M11 5 6 9H2v6h4l5 4V5z M15.5 8.5a5 5 0 0 1 0 7 M19 5a10 10 0 0 1 0 14");
export const Muted = svg("M11 5 6 9H2v6h4l5 4V5z M23 9l-6 6 M17 9l6 6");
export const Fullscreen = svg("M8 3H3v5 M16 3h5v5 M21 16v5h-5 M3 16v5h5");
export const Trash = svg("M3 6h18 M8 6V4h8v2 M6 6l1 14h10l1-14");
export const Clock = svg("M12 7v5l3 2 M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z");
export const Ban = svg("M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z M5.6 5.6l12.8 12.8");
export const Flag = svg("M4 21V4 M4 4h12l-2 4 2 4H4");
