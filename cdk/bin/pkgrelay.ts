#!/usr/bin/env node
// cdk synth|deploy -c env=dev|staging|prod
import { createApp } from '../lib/app';

createApp().app.synth();
