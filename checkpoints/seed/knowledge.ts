import type pg from "pg";

/**
 * The bundled knowledge base: the handbook of Harbor Supply Co., a fictional wholesale supplier whose sample
 * business data lives in the `demo` schema. Written for Keel's samples and tests; every fact here is invented.
 */
export interface KbDocument {
  id: string;
  title: string;
  tags: string[];
  body: string;
}

export const KNOWLEDGE_BASE: readonly KbDocument[] = [
  {
    id: "policy-refunds",
    title: "Refund and Returns Policy",
    tags: ["policy", "customers", "finance"],
    body: `Customers may return unopened goods within 30 days of delivery for a full refund. Opened goods can be returned within 14 days and are refunded at 85% of the invoice value to cover restocking.
Refunds above 5,000 USD need approval from the finance lead before they are issued. Refunds are paid to the original payment method within 10 business days of the return arriving at the warehouse.
Custom-cut and perishable items cannot be returned unless they arrived damaged. Damage must be reported with photos within 48 hours of delivery.
An order that is refunded in full is marked with the status refunded in the order system; partial refunds keep the order's status and are recorded as credit notes.`,
  },
  {
    id: "policy-shipping",
    title: "Shipping Policy",
    tags: ["policy", "customers", "logistics"],
    body: `Orders placed before 14:00 local warehouse time ship the same business day. Standard ground shipping takes 3 to 5 business days; express shipping takes 1 to 2 business days and costs 2.5 times the ground rate.
Shipping is free for orders above 1,000 USD within a customer's home region. Cross-region orders ship from the nearest warehouse that holds stock, and may be split into several parcels.
Enterprise customers can request scheduled deliveries on a fixed weekday. Orders with hazardous materials ship by ground only.
A shipment is marked shipped when the carrier scans it and delivered when the carrier confirms the drop-off.`,
  },
  {
    id: "runbook-incident-response",
    title: "Incident Response Runbook",
    tags: ["engineering", "operations", "on-call"],
    body: `Severity levels: SEV1 means customers cannot place orders or data is at risk; SEV2 means a major feature is degraded for many customers; SEV3 means a minor feature is degraded or a workaround exists.
For SEV1 the on-call engineer pages the incident commander within 5 minutes, opens an incident channel, and posts a status update every 30 minutes. SEV2 updates go out every hour. SEV3 is handled in business hours.
The incident commander owns communication; the on-call engineer owns the fix. Customer-facing status page updates are approved by the incident commander.
Every SEV1 and SEV2 incident gets a blameless postmortem within 5 business days, with action items that have owners and due dates.`,
  },
  {
    id: "policy-on-call",
    title: "On-call Rotation",
    tags: ["engineering", "on-call"],
    body: `Engineers join the on-call rotation after their first 60 days. A shift lasts one week, Monday 10:00 to Monday 10:00, with a primary and a secondary engineer.
The primary acknowledges pages within 10 minutes; if not, the page escalates to the secondary, and after 20 more minutes to the engineering manager.
On-call engineers receive a stipend of 400 USD per week and a day off after any night with more than two pages.
Handover happens in the Monday operations review, where the outgoing primary summarises open incidents and noisy alerts.`,
  },
  {
    id: "policy-data-retention",
    title: "Data Retention Policy",
    tags: ["policy", "security", "compliance"],
    body: `Order and invoice records are kept for 7 years to meet tax obligations. Customer contact details are kept while the account is active and deleted 24 months after the last order.
Application logs are kept for 30 days; security audit logs are kept for 1 year. Backups are kept for 35 days and are encrypted at rest.
A customer may ask for their personal data to be deleted; the request is completed within 30 days, except for records that must be kept by law, which are restricted instead.
Every team reviews the data it stores against this policy once a year, in January.`,
  },
  {
    id: "policy-expenses",
    title: "Travel and Expense Policy",
    tags: ["policy", "finance", "people"],
    body: `Employees book travel through the company travel portal. Economy class is the default; business class is allowed for flights longer than 8 hours.
Meals while travelling are reimbursed up to 75 USD per day. Client entertainment needs prior approval from a manager and is capped at 150 USD per person.
Expenses are submitted within 30 days with itemised receipts. Expenses above 1,000 USD need approval from the department head.
Personal items, fines and upgrades bought for comfort are not reimbursed.`,
  },
  {
    id: "policy-security-passwords",
    title: "Access and Password Policy",
    tags: ["policy", "security"],
    body: `All company accounts use single sign-on with a hardware security key or an authenticator app as the second factor. SMS codes are not accepted as a second factor.
Passwords for the few systems outside single sign-on are at least 16 characters and stored in the company password manager; they are never shared in chat or email.
Access to production databases is granted for at most 8 hours at a time through the access broker, and every session is recorded.
Lost or stolen devices are reported to security within one hour so that sessions can be revoked.`,
  },
  {
    id: "guide-api-rate-limits",
    title: "Partner API Rate Limits",
    tags: ["engineering", "api", "partners"],
    body: `The partner API allows 600 requests per minute per API key, with bursts of up to 100 requests per second. Requests over the limit receive HTTP 429 with a Retry-After header.
Bulk order import is limited to 20 concurrent jobs per partner; each job accepts at most 10,000 order lines.
Partners on the enterprise plan can ask for a higher limit through their account manager; raises are reviewed by the platform team within 5 business days.
Clients should retry with exponential backoff and jitter, starting at 1 second and giving up after 5 attempts.`,
  },
  {
    id: "guide-customer-escalation",
    title: "Customer Escalation Guide",
    tags: ["customers", "support"],
    body: `Support agents escalate a case when a customer reports a missed delivery for an order above 10,000 USD, a repeated quality defect, or a billing error older than one invoice cycle.
Escalated cases go to the regional manager of the customer's region, who replies to the customer within one business day.
Enterprise customers have a named account manager who is copied on every escalation.
The escalation is closed only when the customer confirms the resolution in writing.`,
  },
  {
    id: "guide-pricing-tiers",
    title: "Pricing Tiers and Discounts",
    tags: ["sales", "pricing"],
    body: `List prices apply to small business customers. Mid-market customers receive 5% off list price on orders above 2,500 USD. Enterprise customers receive 12% off list price on all orders and net-60 payment terms.
Volume discounts of an extra 3% apply to a single order line of more than 500 units.
Sales representatives may give up to 5% extra discount; anything beyond needs approval from the regional manager.
Prices are reviewed every quarter and changes are announced to customers 30 days ahead.`,
  },
  {
    id: "process-release",
    title: "Software Release Process",
    tags: ["engineering", "process"],
    body: `Every change is reviewed by one engineer who did not write it, and passes the automated test suite before it merges.
Releases go out on Tuesdays and Thursdays. A release goes to 5% of traffic first, then to everyone after 30 minutes without alerts.
Database migrations must be backward compatible with the previous release, so that a release can be rolled back without restoring data.
No releases happen during the last week of a quarter except fixes for SEV1 or SEV2 incidents.`,
  },
  {
    id: "postmortem-2025-03-checkout",
    title: "Postmortem: Checkout Outage, March 2025",
    tags: ["engineering", "postmortem", "incident"],
    body: `On 11 March 2025 customers could not complete checkout for 47 minutes. The incident was declared SEV1.
Cause: a configuration change lowered the connection limit of the orders database from 200 to 20 during a routine settings update, and the checkout service ran out of connections under the morning peak.
Detection took 12 minutes because the alert on checkout errors had a 10 minute window. The fix was to restore the previous limit.
Action items: validate database settings in review (owner: platform team), shorten the checkout error alert window to 2 minutes (owner: on-call lead), and add a load test of checkout to the release process (owner: QA).`,
  },
  {
    id: "guide-vendor-review",
    title: "Vendor Security Review",
    tags: ["security", "procurement"],
    body: `Any new vendor that will store or process customer data goes through a security review before a contract is signed.
The vendor answers the standard questionnaire and provides a recent SOC 2 Type II report or an equivalent audit.
Reviews take up to 10 business days. High-risk vendors are reviewed again every year; others every two years.
The security team keeps the register of approved vendors and the data each one may receive.`,
  },
  {
    id: "people-onboarding",
    title: "New Employee Onboarding",
    tags: ["people", "process"],
    body: `New employees receive their laptop and accounts on their first day. In the first week they meet their manager daily and complete the security and data protection training.
Each new employee has an onboarding buddy from another team for their first 60 days.
Engineers ship a small change to production within their first two weeks, paired with their buddy.
At 30, 60 and 90 days the manager and the employee review goals together.`,
  },
  {
    id: "policy-remote-work",
    title: "Remote Work Policy",
    tags: ["policy", "people"],
    body: `Employees may work remotely up to three days a week; teams agree on shared office days.
Working from another country is allowed for up to 30 days per year, after notifying the people team, because of tax and data protection rules.
The company pays a home office allowance of 500 USD once and 40 USD per month towards internet costs.
Customer data may only be handled on company devices, over the company VPN when outside the office.`,
  },
];

export async function seedKnowledgeBase(client: pg.PoolClient): Promise<void> {
  for (const doc of KNOWLEDGE_BASE) {
    await client.query(
      "insert into kb_documents (id, title, tags, body) values ($1, $2, $3, $4) on conflict (id) do nothing",
      [doc.id, doc.title, doc.tags, doc.body],
    );
  }
}
