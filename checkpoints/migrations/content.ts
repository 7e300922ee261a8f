import { seedBusinessData } from "../seed/business.js";
import { seedKnowledgeBase } from "../seed/knowledge.js";
import { sql, type Migration } from "./sql.js";

/**
 * The demo content the research and data tools work on: the knowledge base, the business dataset, their seeds and
 * the read-only role the data tool queries as.
 */
export const CONTENT_MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: "knowledge base",
    up: sql(`
      create table kb_documents (
        id text primary key,
        title text not null,
        tags text[] not null default '{}',
        body text not null,
        search tsvector generated always as (
          setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')
        ) stored
      );
      create index kb_documents_search on kb_documents using gin (search);`),
  },
  {
    id: 2,
    name: "sample business dataset",
    up: sql(`
      create schema demo;
      create table demo.regions (id int primary key, name text not null unique, manager text not null);
      create table demo.customers (
        id int primary key, name text not null, segment text not null,
        region_id int not null references demo.regions(id), signup_date date not null);
      create table demo.products (
        id int primary key, name text not null, category text not null, unit_price numeric(10,2) not null);
      create table demo.orders (
        id int primary key, customer_id int not null references demo.customers(id),
        ordered_at date not null, status text not null);
      create table demo.order_items (
        order_id int not null references demo.orders(id), product_id int not null references demo.products(id),
        quantity int not null, unit_price numeric(10,2) not null, primary key (order_id, product_id));
      comment on table demo.regions is 'Sales regions and their managers';
      comment on table demo.customers is 'Customer accounts: segment is smb, mid-market or enterprise';
      comment on table demo.products is 'Product catalogue with list price';
      comment on table demo.orders is 'Orders; status is placed, shipped, delivered, cancelled or refunded';
      comment on table demo.order_items is 'Order lines: revenue of a line is quantity * unit_price';`),
  },
  { id: 5, name: "seed knowledge base", up: seedKnowledgeBase },
  { id: 6, name: "seed business dataset", up: seedBusinessData },
  {
    id: 10,
    name: "read-only role for the data tool",
    // Roles belong to the whole server, so two databases migrating at once may race to create it.
    up: sql(`
      do $$ begin
        create role keel_reader nologin;
      exception when duplicate_object or unique_violation then null;
      end $$;
      grant keel_reader to current_user;
      grant usage on schema demo to keel_reader;
      grant select on all tables in schema demo to keel_reader;`),
  },
];
