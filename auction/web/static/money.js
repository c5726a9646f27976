// Money: integer minor units with an ISO 4217 currency. Formatting, parsing what a person
// typed (never through floating point) and the amount in words (English; for CNY also the
// Chinese financial uppercase form, 大写).

const fractionDigitsCache = new Map();

/** Number of minor-unit digits of `currency` (2 for CNY and USD, 0 for JPY). */
export function fractionDigits(currency) {
  let digits = fractionDigitsCache.get(currency);
  if (digits === undefined) {
    digits = new Intl.NumberFormat("en", { style: "currency", currency })
      .resolvedOptions().maximumFractionDigits;
    fractionDigitsCache.set(currency, digits);
  }
  return digits;
}

function checkMinor(minor) {
  if (!Number.isSafeInteger(minor)) {
    throw new RangeError("an amount must be a whole number of minor units");
  }
}

/** Split minor units into [major, minor] as integers (non-negative amounts). */
function split(minor, currency) {
  const scale = 10 ** fractionDigits(currency);
  return [Math.floor(minor / scale), minor % scale];
}

/** "¥2,190,000.00", "$1,250.50": formatted by the browser's locale rules. */
export function formatMoney(minor, currency, locale = undefined) {
  if (minor === null || minor === undefined) return "—";
  checkMinor(minor);
  const digits = fractionDigits(currency);
  const format = new Intl.NumberFormat(locale, {
    style: "currency", currency, minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
  const negative = minor < 0;
  const [major, rest] = split(Math.abs(minor), currency);
  // Format the major part as an integer, then splice the exact minor digits in.
  const parts = format.formatToParts(major);
  const out = parts.map((part) => {
    if (part.type === "fraction") return String(rest).padStart(digits, "0");
    return part.value;
  }).join("");
  return negative ? `-${out}` : out;
}

/** Parse "2,190,000.50" (major units as a person types them) into minor units. */
export function parseAmount(text, currency) {
  const digits = fractionDigits(currency);
  const cleaned = String(text).trim().replace(/[\s,_]/g, "");
  const match = /^([0-9]+)(?:\.([0-9]*))?$/.exec(cleaned);
  if (!match) throw new RangeError("enter an amount in digits, for example 1250.00");
  const fraction = match[2] || "";
  if (fraction.length > digits) {
    throw new RangeError(digits === 0
      ? `${currency} amounts have no decimal places`
      : `${currency} amounts have at most ${digits} decimal places`);
  }
  const minor = Number(match[1] + fraction.padEnd(digits, "0"));
  if (!Number.isSafeInteger(minor)) throw new RangeError("that amount is too large");
  if (minor <= 0) throw new RangeError("the amount must be more than zero");
  return minor;
}

/** The major-unit text for an input field ("2190000.00"), without grouping. */
export function amountInputText(minor, currency) {
  checkMinor(minor);
  const digits = fractionDigits(currency);
  const [major, rest] = split(minor, currency);
  return digits ? `${major}.${String(rest).padStart(digits, "0")}` : String(major);
}

const ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
  "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
  "eighteen", "nineteen"];
const TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
  "ninety"];
const SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion"];

function belowThousand(n) {
  const words = [];
  if (n >= 100) {
    words.push(`${ONES[Math.floor(n / 100)]} hundred`);
    n %= 100;
  }
  if (n >= 20) {
    words.push(n % 10 ? `${TENS[Math.floor(n / 10)]}-${ONES[n % 10]}` : TENS[Math.floor(n / 10)]);
  } else if (n > 0) {
    words.push(ONES[n]);
  }
  return words.join(" ");
}

/** A non-negative safe integer in English words: 2100000 → "two million one hundred thousand". */
export function numberInWords(n) {
  checkMinor(n);
  if (n < 0) return `minus ${numberInWords(-n)}`;
  if (n === 0) return "zero";
  const groups = [];
  let scale = 0;
  while (n > 0) {
    const group = n % 1000;
    if (group) groups.unshift(SCALES[scale] ? `${belowThousand(group)} ${SCALES[scale]}` : belowThousand(group));
    n = Math.floor(n / 1000);
    scale += 1;
  }
  return groups.join(" ");
}

const UNIT_NAMES = {
  CNY: [["yuan", "yuan"], ["fen", "fen"]],
  USD: [["dollar", "dollars"], ["cent", "cents"]],
  EUR: [["euro", "euros"], ["cent", "cents"]],
  GBP: [["pound", "pounds"], ["penny", "pence"]],
  HKD: [["Hong Kong dollar", "Hong Kong dollars"], ["cent", "cents"]],
  JPY: [["yen", "yen"], ["sen", "sen"]],
  CHF: [["franc", "francs"], ["centime", "centimes"]],
};

/** The amount in English words: 123456 USD → "one thousand two hundred thirty-four dollars and fifty-six cents". */
export function amountInWords(minor, currency) {
  checkMinor(minor);
  if (minor < 0) return `minus ${amountInWords(-minor, currency)}`;
  const [major, rest] = split(minor, currency);
  const [[one, many], [subOne, subMany]] = UNIT_NAMES[currency]
    || [[currency, currency], ["hundredth", "hundredths"]];
  let text = `${numberInWords(major)} ${major === 1 ? one : many}`;
  if (rest) text += ` and ${numberInWords(rest)} ${rest === 1 ? subOne : subMany}`;
  return text;
}

const CN_DIGITS = "零壹贰叁肆伍陆柒捌玖";
const CN_UNITS = ["仟", "佰", "拾", ""];
const CN_SECTIONS = ["", "万", "亿", "万亿"];

function chineseSection(value) {
  const digits = String(value).padStart(4, "0");
  let out = "";
  let pendingZero = false;
  let started = false;
  for (let i = 0; i < 4; i++) {
    const digit = Number(digits[i]);
    if (digit === 0) {
      if (started) pendingZero = true;
      continue;
    }
    if (pendingZero) out += "零";
    pendingZero = false;
    out += CN_DIGITS[digit] + CN_UNITS[i];
    started = true;
  }
  return out;
}

/** An amount of yuan in fen as 人民币大写: 210000000 → "贰佰壹拾万元整". */
export function chineseUppercase(minorFen) {
  checkMinor(minorFen);
  if (minorFen < 0) throw new RangeError("a negative amount has no uppercase form");
  const yuan = Math.floor(minorFen / 100);
  const jiao = Math.floor(minorFen / 10) % 10;
  const fen = minorFen % 10;
  let integer = "";
  if (yuan > 0) {
    const sections = [];
    let rest = yuan;
    while (rest > 0) {
      sections.unshift(rest % 10000);
      rest = Math.floor(rest / 10000);
    }
    if (sections.length > CN_SECTIONS.length) throw new RangeError("amount too large");
    let needZero = false;
    sections.forEach((value, position) => {
      const unit = CN_SECTIONS[sections.length - 1 - position];
      if (value === 0) {
        if (integer) needZero = true;
        return;
      }
      if (integer && (needZero || value < 1000)) integer += "零";
      integer += chineseSection(value) + unit;
      needZero = value % 10 === 0; // 壹仟万零伍仟: the section ended in zeros
    });
    integer += "元";
  }
  if (jiao === 0 && fen === 0) return (integer || "零元") + "整";
  let decimals = "";
  if (jiao) decimals += CN_DIGITS[jiao] + "角";
  else if (integer) decimals += "零";
  if (fen) decimals += CN_DIGITS[fen] + "分";
  else decimals += "整";
  return integer + decimals;
}

/** Every wording of the amount a confirmation should show, e.g. for CNY English and 大写. */
export function amountWordings(minor, currency) {
  const wordings = [amountInWords(minor, currency)];
  if (currency === "CNY") wordings.push(chineseUppercase(minor));
  return wordings;
}
