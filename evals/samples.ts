import type { AgentType } from "../agents/contracts.js";

/**
 * The bundled sample requests. `npm start` runs the first; `keel run --sample N` runs any. Each lists the agents
 * its plan is expected to use, which the tests check against the offline model (and rephrasings of each).
 */
export interface SampleRequest {
  id: number;
  request: string;
  agents: AgentType[];
  needsApproval: boolean;
}

export const SAMPLES: readonly SampleRequest[] = [
  {
    id: 1,
    request:
      "Summarize our shipping policy, find total revenue by region for 2025, compute each region's share of total revenue, and email the findings to ops@harbor.example",
    agents: ["research", "data", "code", "communication"],
    needsApproval: true,
  },
  {
    id: 2,
    request: "What does the incident response runbook say about SEV1 incidents?",
    agents: ["research"],
    needsApproval: false,
  },
  {
    id: 3,
    request: "Which 5 customers generated the most revenue in 2025?",
    agents: ["data"],
    needsApproval: false,
  },
  { id: 4, request: "Calculate the first 15 Fibonacci numbers", agents: ["code"], needsApproval: false },
  {
    id: 5,
    request: "Email oncall@harbor.example that the database failover drill moves to Friday at 10:00",
    agents: ["communication"],
    needsApproval: true,
  },
  {
    id: 6,
    request:
      "How many orders were placed each month in 2025, and what was the average month-over-month growth?",
    agents: ["data", "code"],
    needsApproval: false,
  },
  {
    id: 7,
    request:
      "Look up our data retention policy and remind all-staff@harbor.example how long application logs are kept",
    agents: ["research", "communication"],
    needsApproval: true,
  },
  {
    id: 8,
    request: "Find the refund policy and count refunded orders by region",
    agents: ["research", "data"],
    needsApproval: false,
  },
  { id: 9, request: "Is 7919 a prime number?", agents: ["code"], needsApproval: false },
  {
    id: 10,
    request: "Send finance@harbor.example the total revenue by product category for 2025",
    agents: ["data", "communication"],
    needsApproval: true,
  },
];
