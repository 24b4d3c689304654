// A 5x7 bitmap font of printable ASCII (32..126), drawn for mopt's PNG charts. Each glyph is a 6x9 cell: 5
// columns of ink plus one of spacing; rows 0..6 stand on the baseline and rows 7..8 hold descenders (g j p q y
// , _). A glyph is written as 9 base-32 digits, one per row from the top; a digit's 5 bits are the row's
// pixels, the most significant bit leftmost ('e' = 01110, 'v' = 11111).

export const GLYPH_W = 5;
export const GLYPH_ADVANCE = 6;
/** rows above the baseline */
export const GLYPH_ASCENT = 7;
export const GLYPH_ROWS = 9;

const TABLE = [
  '000000000', '444440400', 'aaa000000', 'aavavaa00', '4fke5u400', 'op248j300', 'cik8lid00', '448000000',
  '248884200', '842224800', '04lel4000', '044v44000', '00000c480', '000v00000', '00000cc00', '01248g000',
  'ehjlphe00', '4c4444e00', 'eh1248v00', 'v2421he00', '26aiv2200', 'vgu11he00', '68guhhe00', 'v12488800',
  'ehhehhe00', 'ehhf12c00', '0cc0cc000', '0cc0c4800', '248g84200', '00v0v0000', '842124800', 'eh1240400',
  'eh1dlle00', 'ehhvhhh00', 'uhhuhhu00', 'ehggghe00', 'sihhhis00', 'vgguggv00', 'vgguggg00', 'ehgnhhf00',
  'hhhvhhh00', 'e44444e00', '72222ic00', 'hikokih00', 'ggggggv00', 'hrllhhh00', 'hhpljhh00', 'ehhhhhe00',
  'uhhuggg00', 'ehhhlid00', 'uhhukih00', 'fgge11u00', 'v44444400', 'hhhhhhe00', 'hhhhha400', 'hhhllla00',
  'hha4ahh00', 'hha444400', 'v1248gv00', 'e88888e00', '0g8421000', 'e22222e00', '4ah000000', '0000000v0',
  '840000000', '00e1fhf00', 'ggmphhu00', '00egghe00', '11djhhf00', '00ehvge00', '698s88800', '00fhhhf1e',
  'ggmphhh00', '40c444e00', '2062222ic', 'ggikoki00', 'c44444e00', '00qllhh00', '00mphhh00', '00ehhhe00',
  '00uhhhugg', '00fhhhf11', '00mpggg00', '00fge1u00', '88s889600', '00hhhjd00', '00hhha400', '00hhlla00',
  '00ha4ah00', '00hhhhf1e', '00v248v00', '244844200', '444444400', '844244800', '008l20000',
];
const ROWS = Uint8Array.from(TABLE.join(''), (d) => parseInt(d, 32));

/** Characters outside ASCII that the charts' titles use, spelled in ASCII; anything else prints as '?'. */
const SUBSTITUTES: Record<string, string> = { '‖': '||', '→': '->', '–': '-', '—': '-', '×': 'x', '≤': '<=', '≥': '>=', 'µ': 'u' };

/** The text as the font can draw it: printable ASCII only. */
export function toFontText(s: string): string {
  let out = '';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    out += code >= 32 && code < 127 ? ch : (SUBSTITUTES[ch] ?? '?');
  }
  return out;
}

/** Whether the glyph of a printable ASCII character has ink at (column, row); false for other characters. */
export function glyphPixel(ch: string, col: number, row: number): boolean {
  const i = ch.length === 1 ? ch.charCodeAt(0) - 32 : -1;
  if (i < 0 || i >= TABLE.length || col < 0 || col >= GLYPH_W || row < 0 || row >= GLYPH_ROWS) return false;
  return ((ROWS[i * GLYPH_ROWS + row]! >> (GLYPH_W - 1 - col)) & 1) === 1;
}
