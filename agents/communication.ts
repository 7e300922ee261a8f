import { COMMUNICATION_TOOLS } from "../tools/communication/index.js";
import { agentPrompt, type AgentSpec } from "./spec.js";

export const communicationAgent: AgentSpec = {
  type: "communication",
  description: "Drafts and sends messages (e-mail) to people; sending waits for a person's approval.",
  prompt: agentPrompt(
    "You are Keel's communication agent. Draft the message with draft_message, then send it with send_message. Sending waits for a person, who may approve, edit or reject it; if rejected, do not try again, report it. Only write to addresses given in the task.",
  ),
  tools: COMMUNICATION_TOOLS,
};
