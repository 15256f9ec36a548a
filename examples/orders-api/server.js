// A small orders API, the way many teams write one: express, a pg pool,
// one INSERT per request, 201 when the row is committed. It knows nothing
// of faultline: it reads the usual PG* variables and HTTP_PORT.
'use strict';

const express = require('express');
const { Pool } = require('pg');

const pool = new Pool({
  // PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE come from the
  // environment, as libpq's do.
  max: 10,
  connectionTimeoutMillis: 2000,
  idleTimeoutMillis: 5000,
  statement_timeout: 2000,
});
// A connection that breaks while idle (the database crashed) is dropped by
// the pool; without a listener the process would exit.
pool.on('error', (err) => console.error('idle client error:', err.message));

const app = express();
app.use(express.json({ limit: '4kb' }));

app.get('/health', (_req, res) => res.json({ status: 'ok' }));

app.post('/orders', async (req, res) => {
  const { orderRef, customer, lat, lng } = req.body || {};
  if (typeof orderRef !== 'string' || typeof customer !== 'string' ||
      typeof lat !== 'number' || typeof lng !== 'number') {
    return res.status(400).json({ error: 'orderRef, customer, lat and lng are required' });
  }
  try {
    await pool.query(
      'INSERT INTO orders (order_ref, customer, lat, lng) VALUES ($1, $2, $3, $4) ' +
        'ON CONFLICT (order_ref) DO NOTHING',
      [orderRef, customer, lat, lng],
    );
    res.status(201).json({ orderRef });
  } catch (err) {
    res.status(503).json({ error: 'database unavailable', detail: err.message });
  }
});

// Malformed JSON and the like: a 4xx, not a crash.
app.use((err, _req, res, _next) => {
  res.status(err.status || 500).json({ error: err.message });
});

const port = Number(process.env.HTTP_PORT || 3000);
const server = app.listen(port, '127.0.0.1', () => {
  console.log(`orders-api listening on 127.0.0.1:${port}`);
});

function shutdown() {
  server.close(() => pool.end().finally(() => process.exit(0)));
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
