/**
 * The event shapes. Each generator is a pure function of (seed, seq, time): message N is the same
 * bytes for the same seed and start time, however often the source restarted on the way.
 */
import { hash32, Rng } from './prng.js';

export const SHAPES = ['order', 'click', 'log'] as const;
export type Shape = (typeof SHAPES)[number];

/** The top-level fields of each shape that can be a message key (`keyField`). */
export const KEY_FIELDS: Record<Shape, readonly string[]> = {
  order: ['orderId', 'userId', 'status', 'currency', 'country', 'paymentMethod'],
  click: ['eventId', 'userId', 'sessionId', 'device', 'country', 'path'],
  log: ['level', 'service', 'host', 'traceId'],
};

export type Event = Record<string, unknown>;

const USERS = 5000;
const COUNTRIES = [
  ['US', 30],
  ['DE', 10],
  ['GB', 10],
  ['FR', 8],
  ['JP', 8],
  ['BR', 6],
  ['IN', 8],
  ['CA', 5],
  ['NL', 4],
  ['AU', 4],
  ['ES', 4],
  ['SE', 3],
] as const;
const CITIES: Record<string, readonly string[]> = {
  US: ['New York', 'San Francisco', 'Chicago', 'Austin', 'Seattle'],
  DE: ['Berlin', 'Munich', 'Hamburg', 'Cologne'],
  GB: ['London', 'Manchester', 'Edinburgh', 'Bristol'],
  FR: ['Paris', 'Lyon', 'Marseille', 'Toulouse'],
  JP: ['Tokyo', 'Osaka', 'Kyoto', 'Fukuoka'],
  BR: ['São Paulo', 'Rio de Janeiro', 'Belo Horizonte'],
  IN: ['Bengaluru', 'Mumbai', 'Delhi', 'Pune'],
  CA: ['Toronto', 'Vancouver', 'Montréal'],
  NL: ['Amsterdam', 'Rotterdam', 'Utrecht'],
  AU: ['Sydney', 'Melbourne', 'Brisbane'],
  ES: ['Madrid', 'Barcelona', 'Valencia'],
  SE: ['Stockholm', 'Göteborg', 'Malmö'],
};
const CURRENCY_OF: Record<string, string> = {
  US: 'USD',
  DE: 'EUR',
  GB: 'GBP',
  FR: 'EUR',
  JP: 'JPY',
  BR: 'BRL',
  IN: 'INR',
  CA: 'CAD',
  NL: 'EUR',
  AU: 'AUD',
  ES: 'EUR',
  SE: 'SEK',
};
/** Units of the currency per USD (fixed, plausible). */
const PER_USD: Record<string, number> = { USD: 1, EUR: 0.92, GBP: 0.79, JPY: 151, BRL: 5.1, INR: 83, CAD: 1.36, AUD: 1.52, SEK: 10.6 };
const TAX_RATE: Record<string, number> = {
  US: 0.08,
  DE: 0.19,
  GB: 0.2,
  FR: 0.2,
  JP: 0.1,
  BR: 0.17,
  IN: 0.18,
  CA: 0.13,
  NL: 0.21,
  AU: 0.1,
  ES: 0.21,
  SE: 0.25,
};
const PRODUCTS = [
  ['SKU-1001', 'Wireless Mouse', 2499],
  ['SKU-1002', 'Mechanical Keyboard', 8999],
  ['SKU-1003', 'USB-C Hub', 3999],
  ['SKU-1004', '27" Monitor', 27999],
  ['SKU-1005', 'Noise-Cancelling Headphones', 19999],
  ['SKU-1006', 'Laptop Stand', 4599],
  ['SKU-1007', 'Webcam 1080p', 5999],
  ['SKU-1008', 'Desk Lamp', 3299],
  ['SKU-1009', 'Ergonomic Chair', 34999],
  ['SKU-1010', 'Coffee Beans 1kg', 2199],
  ['SKU-1011', 'Water Bottle', 1899],
  ['SKU-1012', 'Backpack', 7499],
  ['SKU-1013', 'Running Shoes', 11999],
  ['SKU-1014', 'Yoga Mat', 2999],
  ['SKU-1015', 'Paperback Novel', 1499],
] as const;
const ORDER_STATUS = [
  ['placed', 50],
  ['paid', 30],
  ['shipped', 12],
  ['delivered', 5],
  ['cancelled', 3],
] as const;
const PAYMENT = [
  ['card', 60],
  ['paypal', 18],
  ['apple_pay', 10],
  ['google_pay', 7],
  ['bank_transfer', 5],
] as const;
const USER_AGENTS = [
  ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36', 'desktop', 34],
  ['Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15', 'desktop', 12],
  ['Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0', 'desktop', 5],
  [
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51',
    'desktop',
    6,
  ],
  [
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
    'mobile',
    22,
  ],
  [
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36',
    'mobile',
    15,
  ],
  [
    'Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
    'tablet',
    6,
  ],
] as const;
const AGENTS = USER_AGENTS.map(([ua, d, w]) => [[ua, d] as const, w] as const);
const PAGES = [
  ['/', 20],
  ['/search', 12],
  ['/cart', 8],
  ['/checkout', 4],
  ['/account', 3],
  ['/deals', 6],
  ['/products/:slug', 40],
  ['/help/shipping', 2],
] as const;
const REFERRERS = [
  [null, 40],
  ['https://www.google.com/', 30],
  ['https://www.bing.com/', 4],
  ['https://duckduckgo.com/', 3],
  ['https://t.co/', 5],
  ['https://www.facebook.com/', 6],
  ['https://news.ycombinator.com/', 2],
  ['https://shop.example.com/', 10],
] as const;
const ELEMENTS = [
  'nav-home',
  'search-submit',
  'add-to-cart',
  'buy-now',
  'product-card',
  'banner-deal',
  'footer-help',
  'checkout-continue',
] as const;
const LEVELS = [
  ['debug', 15],
  ['info', 68],
  ['warn', 12],
  ['error', 5],
] as const;
const SERVICES = ['api-gateway', 'checkout', 'catalog', 'payments', 'auth', 'search', 'inventory'] as const;
const ROUTES = [
  ['GET', '/v1/products'],
  ['GET', '/v1/products/:id'],
  ['POST', '/v1/cart/items'],
  ['POST', '/v1/checkout'],
  ['POST', '/v1/payments/authorize'],
  ['GET', '/v1/search'],
  ['POST', '/v1/auth/token'],
  ['GET', '/v1/inventory/:sku'],
] as const;
const MESSAGES: Record<string, readonly string[]> = {
  debug: ['cache lookup', 'query plan selected', 'feature flag evaluated', 'connection reused from pool'],
  info: ['request completed', 'order accepted', 'user signed in', 'payment authorized', 'inventory reserved'],
  warn: ['slow query', 'retrying upstream call', 'rate limit approaching', 'deprecated API version used'],
  error: ['upstream timeout', 'payment declined by issuer', 'database connection refused', 'unhandled exception in handler'],
};

function userOf(rng: Rng): { id: string; n: number } {
  const n = rng.int(1, USERS);
  return { id: `u_${String(n).padStart(5, '0')}`, n };
}

const SLUGS = PRODUCTS.map(([, name]) =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, ''),
);

/** Items per order and quantity per item, by weight. */
const ITEM_COUNT = [
  [1, 45],
  [2, 30],
  [3, 15],
  [4, 7],
  [5, 3],
] as const;
const QUANTITY = [
  [1, 80],
  [2, 15],
  [3, 5],
] as const;

function order(rng: Rng, at: number): Event {
  const user = userOf(rng);
  const country = rng.weighted(COUNTRIES);
  const currency = CURRENCY_OF[country] as string;
  const rate = PER_USD[currency] as number;
  // Amounts are computed in the currency's minor unit (yen for JPY, cents otherwise), so that the
  // parts shown add up exactly to the total shown.
  const minor = currency === 'JPY' ? 1 : 100;
  const items = Array.from({ length: rng.weighted(ITEM_COUNT) }, () => {
    const [sku, name, usdCents] = rng.pick(PRODUCTS);
    return { sku, name, quantity: rng.weighted(QUANTITY), unitMinor: Math.round((usdCents / 100) * rate * minor) };
  });
  const subtotal = items.reduce((sum, i) => sum + i.unitMinor * i.quantity, 0);
  const shipping = subtotal >= 50 * rate * minor ? 0 : Math.round(4.99 * rate * minor);
  const tax = Math.round(subtotal * (TAX_RATE[country] as number));
  return {
    type: 'order',
    orderId: rng.uuid(),
    createdAt: new Date(at).toISOString(),
    userId: user.id,
    status: rng.weighted(ORDER_STATUS),
    currency,
    items: items.map((i) => ({ sku: i.sku, name: i.name, quantity: i.quantity, unitPrice: i.unitMinor / minor })),
    subtotal: subtotal / minor,
    tax: tax / minor,
    shipping: shipping / minor,
    total: (subtotal + tax + shipping) / minor,
    paymentMethod: rng.weighted(PAYMENT),
    country,
    city: rng.pick(CITIES[country] as readonly string[]),
  };
}

function click(rng: Rng, at: number, seed: number): Event {
  const user = userOf(rng);
  const [userAgent, device] = rng.weighted(AGENTS);
  let path: string = rng.weighted(PAGES);
  if (path === '/products/:slug') path = `/products/${rng.pick(SLUGS)}`;
  const query = path === '/search' ? `?q=${encodeURIComponent(rng.pick(PRODUCTS)[1].split(' ')[0]?.toLowerCase() ?? 'mouse')}` : '';
  // A session is a user's half hour: the same user in the same half hour shares it.
  const sessionId = `s_${hash32(seed, user.n, Math.floor(at / 1_800_000))
    .toString(16)
    .padStart(8, '0')}`;
  return {
    type: 'click',
    eventId: rng.uuid(),
    timestamp: new Date(at).toISOString(),
    userId: user.id,
    sessionId,
    url: `https://shop.example.com${path}${query}`,
    path,
    referrer: rng.weighted(REFERRERS),
    element: rng.pick(ELEMENTS),
    userAgent,
    device,
    // Documentation address ranges (RFC 5737): realistic-looking, never a real host.
    ip: `${rng.pick(['192.0.2', '198.51.100', '203.0.113'])}.${rng.int(1, 254)}`,
    country: rng.weighted(COUNTRIES),
    timeOnPageMs: Math.round(-Math.log(1 - rng.next()) * 12_000),
  };
}

function log(rng: Rng, at: number): Event {
  const level = rng.weighted(LEVELS);
  const service = rng.pick(SERVICES);
  const [method, route] = rng.pick(ROUTES);
  const status =
    level === 'error'
      ? rng.pick([500, 502, 503, 504])
      : level === 'warn'
        ? rng.pick([200, 404, 409, 429])
        : rng.weighted([
            [200, 85],
            [201, 10],
            [204, 5],
          ] as const);
  const latencyMs = Math.round((level === 'error' || level === 'warn' ? 400 : 20) * Math.exp(rng.next() * 2.5) * 10) / 10;
  return {
    type: 'log',
    timestamp: new Date(at).toISOString(),
    level,
    service,
    host: `ip-10-0-${rng.int(0, 15)}-${rng.int(1, 254)}`,
    traceId: rng.hex(32),
    spanId: rng.hex(16),
    message: rng.pick(MESSAGES[level] as readonly string[]),
    http: {
      method,
      path: route.replace(':id', String(rng.int(1, 99_999))).replace(':sku', `SKU-${rng.int(1001, 1015)}`),
      status,
      latencyMs,
    },
  };
}

/**
 * Event number `seq` (≥ 1) of a stream: a pure function of its arguments. `at` (ms since the epoch)
 * is the event's time, which the source derives from seq too.
 */
export function generate(shape: Shape, seed: number, seq: number, at: number): Event {
  const rng = new Rng(hash32(seed, seq, SHAPES.indexOf(shape)));
  switch (shape) {
    case 'order':
      return order(rng, at);
    case 'click':
      return click(rng, at, seed);
    case 'log':
      return log(rng, at);
  }
}
