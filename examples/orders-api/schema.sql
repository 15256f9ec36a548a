-- The orders API's own table. faultline applies this file to its database
-- before the API starts (setup_sql), once per repetition.
CREATE TABLE IF NOT EXISTS orders (
    id          bigserial PRIMARY KEY,
    order_ref   text        NOT NULL UNIQUE,
    customer    text        NOT NULL,
    lat         double precision NOT NULL,
    lng         double precision NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
